//! The state every handler receives. Its own module at the bottom of `http`, so that
//! handler modules need not import the module that assembles them.

use crate::app::App;
use axum::extract::FromRef;
use std::sync::Arc;

/// What every handler receives.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl FromRef<AppState> for Arc<App> {
    fn from_ref(s: &AppState) -> Arc<App> {
        s.0.clone()
    }
}
