//! A blocking client for the Docker Engine API, shared by berth's two API clients, the CLI
//! and compose: the connection ([`conn`]: unix socket, TCP, TLS), HTTP requests and
//! streamed or hijacked responses ([`client`]), the terminal side of attach and exec
//! ([`stream`]) and the progress display of pulls, pushes and builds ([`progress`]).
//!
//! It never calls the engine directly, so it drives a real Docker daemon as well.

pub mod client;
pub mod conn;
pub mod context;
pub mod progress;
pub mod stream;
pub mod table;

pub use client::{Client, ClientError};
