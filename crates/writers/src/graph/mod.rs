//! Microsoft Graph: a thin typed client and the Exchange Online writer.

mod batch;
mod categories;
mod client;
pub mod estimate;
mod pim;
mod throttle;
mod writer;

pub use client::{
    BatchRequest, BatchResponse, GraphClient, MAX_BATCH, MailboxProbe, NewUser, RetryPolicy, Sku,
    User, generate_password,
};
pub use pim::{DEFAULT_CONTACTS, GraphPimWriter, PIM_STATE_PROPERTY_ID, TASK_LINK_APPLICATION};
pub use throttle::{Budgets, SharedBudget};
pub use writer::{FINGERPRINT_PROPERTY, GraphMailboxWriter, GraphTarget, GraphTargetConfig};
