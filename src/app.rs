//! The application: the services wired from the configuration, and this replica's claim to
//! run the scheduled jobs. Handlers and jobs hold it (`AppState(Arc<App>)`); the domain is
//! given the services it dereferences to.

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::Result;
use crate::leadership::Leadership;
use crate::services::Services;
use crate::store::Store;
use std::ops::Deref;
use std::sync::Arc;

pub struct App {
    /// Shared with background work that outlives a request (sync runs, the revocation
    /// listener).
    pub services: Arc<Services>,
    /// Whether this replica runs the scheduled jobs.
    pub leadership: Leadership,
}

impl Deref for App {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl App {
    /// Opens the database, applies migrations and prepares the directories.
    pub async fn new(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<App>> {
        let store = Store::open(&config.database)?;
        store.migrate().await?;
        Self::with_store(config, clock, store)
    }

    /// Builds the application on an opened (and migrated) store.
    pub fn with_store(config: Config, clock: Arc<dyn Clock>, store: Store) -> Result<Arc<App>> {
        let services = Services::with_store(config, clock, store)?;
        let leadership =
            Leadership::new(services.store.backend().clone(), services.replica.clone());
        Ok(Arc::new(App {
            services: Arc::new(services),
            leadership,
        }))
    }

    pub async fn with_system_clock(config: Config) -> Result<Arc<App>> {
        Self::new(config, Arc::new(SystemClock)).await
    }
}
