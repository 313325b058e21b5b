//! Host-side derivations for building lpatch.ko's Rust object against a given kernel tree.
pub mod cmdfile;
pub mod config;
pub mod target;
