//! Talking to Odoo through its standard external API: the wire client, its errors, and the
//! mapping of Odoo's records into plain ones.

mod client;
mod error;
pub mod mapping;
pub mod models;
mod transcript;

pub use client::{
    ApiChoice, ApiKey, Call, ClientConfig, HealthProbe, OdooClient, Protocol, ServerVersion,
    parse_json2_answer, parse_jsonrpc_answer, parse_major,
};
pub use error::{ErrorClass, OdooError};
pub use models::{Degraded, ModelMap, ModelMapError, PackagingSource};
