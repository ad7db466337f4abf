//! The transmitter side of an OpenID Connect directory's shared signals: verifying a Security
//! Event Token (`set`, pure) and the transmitters' metadata and keys (`transmitter`, cached
//! HTTP), as `directory::oidc` holds the provider's; what a SET does to people is `crate::ssf`.

pub mod set;
pub mod transmitter;
