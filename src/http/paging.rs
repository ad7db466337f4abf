//! `offset`/`limit` paging with `next`/`prev` links, as the Seeq API pages lists.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

pub const DEFAULT_LIMIT: i64 = 40;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, Copy, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many items to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// How many items at most (default 40).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The paging fields of a list answer, beside its items.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageLinks {
    /// The offset of this page.
    pub offset: i64,
    /// The limit of this page.
    pub limit: i64,
    /// How many items there are in all.
    pub total_results: i64,
    /// The path and query of the next page; null on the last one.
    pub next: Option<String>,
    /// The path and query of the previous page; null on the first one.
    pub prev: Option<String>,
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
        // The next page starts at offset + limit: that must be a number too.
        if offset.checked_add(limit).is_none() {
            return Err(Error::invalid(format!(
                "offset: must be at most {} with limit {limit}",
                i64::MAX - limit
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
        let next = self.offset.checked_add(self.limit)?;
        (next < total).then(|| self.link(path, extra, next))
    }

    /// The paging fields of the answer: this page, the total, the `next` and `prev` links.
    pub fn links(&self, path: &str, extra: &[(&str, String)], total: i64) -> PageLinks {
        PageLinks {
            offset: self.offset,
            limit: self.limit,
            total_results: total,
            next: self.next(path, extra, total),
            prev: self.prev(path, extra),
        }
    }

    /// The `prev` link, when this page does not start at the beginning.
    pub fn prev(&self, path: &str, extra: &[(&str, String)]) -> Option<String> {
        (self.offset > 0)
            .then(|| self.link(path, extra, self.offset.saturating_sub(self.limit).max(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(offset: i64, limit: i64) -> Result<Page> {
        PageParams {
            offset: Some(offset),
            limit: Some(limit),
        }
        .page()
    }

    #[test]
    fn the_last_possible_page_still_has_a_number_for_the_next() {
        let p = page(i64::MAX - 40, 40).unwrap();
        assert_eq!(p.next("/api/users", &[], i64::MAX), None);
        assert_eq!(
            p.prev("/api/users", &[]).unwrap(),
            format!("/api/users?offset={}&limit=40", i64::MAX - 80)
        );
    }

    #[test]
    fn offsets_past_the_end_of_numbers_are_refused() {
        let e = page(i64::MAX, 40).unwrap_err();
        assert!(e.to_string().contains("offset: must be at most"), "{e}");
        assert!(page(i64::MAX - 39, 40).is_err());
        assert!(page(-1, 40).is_err());
        assert!(page(0, 0).is_err());
    }

    #[test]
    fn links_keep_the_filters() {
        let p = page(40, 40).unwrap();
        assert_eq!(
            p.next(
                "/api/users",
                &[("isApplicationServicePrincipal", "true".into())],
                100
            )
            .unwrap(),
            "/api/users?offset=80&limit=40&isApplicationServicePrincipal=true"
        );
        assert_eq!(p.next("/api/users", &[], 80), None);
    }
}
