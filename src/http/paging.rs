//! `offset`/`limit` paging with `next`/`prev` links, as the Seeq API pages lists.

use crate::error::{Error, Result};
use serde::Deserialize;

pub const DEFAULT_LIMIT: i64 = 40;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, Copy, Deserialize, Default)]
pub struct PageParams {
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

impl PageParams {
    pub fn page(self) -> Result<Page> {
        let offset = self.offset.unwrap_or(0);
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if offset < 0 {
            return Err(Error::invalid("offset: must be 0 or more"));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid(format!(
                "limit: must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(Page { offset, limit })
    }
}

impl Page {
    fn link(&self, path: &str, extra: &[(&str, String)], offset: i64) -> String {
        let mut url = format!("{path}?offset={offset}&limit={}", self.limit);
        for (k, v) in extra {
            url.push_str(&format!(
                "&{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            ));
        }
        url
    }

    /// The `next` link, when more items follow this page.
    pub fn next(&self, path: &str, extra: &[(&str, String)], total: i64) -> Option<String> {
        (self.offset + self.limit < total).then(|| self.link(path, extra, self.offset + self.limit))
    }

    /// The `prev` link, when this page does not start at the beginning.
    pub fn prev(&self, path: &str, extra: &[(&str, String)]) -> Option<String> {
        (self.offset > 0).then(|| self.link(path, extra, (self.offset - self.limit).max(0)))
    }
}
