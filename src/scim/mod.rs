//! SCIM 2.0 provisioning (RFC 7643/7644): the protocol, and the users it manages.

pub mod protocol;
