//! SCIM 2.0 (RFC 7643/7644) wire format for users: JSON mapping, PATCH, filters, paging, errors and discovery; pure, no I/O.
//!
//! One file per concern, each importing only files above it in this order: `error` ← `user`
//! ← `filter` ← `patch`, and `user`, `list` ← `discovery`. Callers name every public item
//! through this module (`protocol::ScimUser`), whichever file holds it.

mod discovery;
mod error;
mod filter;
mod list;
mod patch;
#[cfg(test)]
mod testing;
mod user;

pub use discovery::{
    resource_types, schemas, service_provider_config, user_resource_type, user_schema,
};
pub use error::{ScimError, ERROR_SCHEMA};
pub use filter::{matches, parse_filter, Attr, Filter};
pub use list::{list_response, paging, LIST_RESPONSE_SCHEMA, MAX_RESULTS};
pub use patch::{apply_patch, PATCH_OP_SCHEMA};
pub use user::{user_from_json, user_to_json, Email, ScimUser, USER_SCHEMA};
