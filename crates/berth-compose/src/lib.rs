//! `berth compose`: multi-container apps from compose files, interchangeable with Docker
//! Compose v2. The loader reads the Compose Specification into a typed model; convergence
//! brings a project to that model through the Docker Engine API only (it is an API client,
//! as the CLI is), so it drives a real Docker daemon too.

pub mod dotenv;
pub mod interp;
pub mod yaml;
