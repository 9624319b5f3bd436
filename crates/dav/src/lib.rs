#![doc = include_str!("../README.md")]

mod client;
mod error;
mod href;
mod model;
mod secret;
mod xml;

#[cfg(test)]
mod fixture_tests;

pub use client::{DavClient, DavClientOptions, MULTIGET_BATCH};
pub use error::{BoxError, Error};
pub use href::Href;
pub use model::{Collection, CollectionKind, Discovery, Fetched, Item, ItemRef, SyncChanges};
pub use secret::{Credentials, Secret};
