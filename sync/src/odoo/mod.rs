//! Talking to Odoo through its standard external API: the wire client and its errors.

mod client;
mod error;

pub use client::{
    ApiChoice, ApiKey, Call, ClientConfig, OdooClient, Protocol, ServerVersion, parse_major,
};
pub use error::{ErrorClass, OdooError};
