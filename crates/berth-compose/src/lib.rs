//! `berth compose`: multi-container apps from compose files, interchangeable with Docker
//! Compose v2. The loader ([`load`]) reads the Compose Specification into a typed model
//! ([`model`]); convergence brings a project to that model through the Docker Engine API
//! only (it is an API client, as the CLI is), so it drives a real Docker daemon too.
//!
//! Loading, in order: [`yaml`] (text to a tree with positions), [`interp`] (variables),
//! [`schema`] + [`spec`] (checked, short syntax rewritten into the long form), [`merge`]
//! (several files, `extends`), then [`load`]'s normalization and reference checks.

pub mod api;
pub mod build;
pub mod cli;
pub mod cmd;
pub mod converge;
pub mod convert;
pub mod dotenv;
pub mod hash;
pub mod interp;
pub mod load;
pub mod merge;
pub mod model;
pub mod naming;
pub mod schema;
pub mod shellwords;
pub mod spec;
pub mod units;
pub mod yaml;
pub mod yaml_out;
