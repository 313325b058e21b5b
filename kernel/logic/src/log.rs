//! Log lines of the core, through the kernel interface ([`crate::seam::Kernel::log`]): the
//! kernel prints them with printk, the fake kernel of the host tests records them.

/// A count and its noun, for a log line: "1 function", "2 functions".
pub struct Count(pub usize, pub &'static str);

impl core::fmt::Display for Count {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}{}", self.0, self.1, if self.0 == 1 { "" } else { "s" })
    }
}

/// How serious a line is (the kernel's KERN_* levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Err,
    Warning,
    Notice,
    Info,
}

/// `log_err!(k, "...", args)`: one line at KERN_ERR through the kernel `k` (a `Kernel`
/// or a reference to one).
#[macro_export]
macro_rules! log_err {
    ($k:expr, $($arg:tt)*) => {
        {
            // The trait's method, whether or not the caller has it in scope.
            #[allow(unused_imports)]
            use $crate::seam::Kernel as _;
            ($k).log($crate::log::Level::Err, format_args!($($arg)*))
        }
    };
}
#[macro_export]
macro_rules! log_warn {
    ($k:expr, $($arg:tt)*) => {
        {
            // The trait's method, whether or not the caller has it in scope.
            #[allow(unused_imports)]
            use $crate::seam::Kernel as _;
            ($k).log($crate::log::Level::Warning, format_args!($($arg)*))
        }
    };
}
#[macro_export]
macro_rules! log_info {
    ($k:expr, $($arg:tt)*) => {
        {
            // The trait's method, whether or not the caller has it in scope.
            #[allow(unused_imports)]
            use $crate::seam::Kernel as _;
            ($k).log($crate::log::Level::Info, format_args!($($arg)*))
        }
    };
}
