//! A secret scanner as a peer (GitHub's secret scanning partner program): checking a
//! report's signature (`signature`, pure) against the scanner's public keys (`keys`, read
//! from a file or URL and held as `directory::fetched` holds keys); what a report does to
//! keys is `crate::secret_scanning`.

pub mod keys;
pub mod signature;
