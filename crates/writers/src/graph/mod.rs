//! Microsoft Graph: a thin typed client and the Exchange Online writer.

mod batch;
mod client;
mod throttle;
mod writer;

pub use client::{
    BatchRequest, BatchResponse, GraphClient, MailboxProbe, NewUser, RetryPolicy, Sku, User,
    generate_password,
};
pub use throttle::Budgets;
pub use writer::{FINGERPRINT_PROPERTY, GraphMailboxWriter, GraphTarget, GraphTargetConfig};
