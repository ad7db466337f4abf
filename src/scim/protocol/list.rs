//! List responses and paging (RFC 7644 §3.4.2): the ListResponse body, the largest page we
//! serve, and `startIndex`/`count` read from query parameters.

use serde_json::{json, Value};

pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Largest page we serve; advertised as `filter.maxResults` so clients know the cap.
pub const MAX_RESULTS: u64 = 200;

pub fn list_response(
    resources: Vec<Value>,
    total: u64,
    start_index: u64,
    items_per_page: u64,
) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": items_per_page,
        "Resources": resources,
    })
}

/// `(startIndex, count)` from query parameters (RFC 7644 §3.4.2.4): a start below 1 means 1,
/// a negative count means 0, the count is capped at `max`, and unparseable values fall back
/// to the defaults (1 and `max`) rather than failing the request.
pub fn paging(start_index: Option<&str>, count: Option<&str>, max: u64) -> (u64, u64) {
    let start = match start_index.and_then(parse_int) {
        Some(n) if n > 1 => u64::try_from(n).unwrap_or(u64::MAX),
        _ => 1,
    };
    let count = match count.and_then(parse_int) {
        Some(n) => u64::try_from(n.max(0)).unwrap_or(u64::MAX).min(max),
        None => max,
    };
    (start, count)
}

fn parse_int(s: &str) -> Option<i128> {
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_edge_cases() {
        assert_eq!(paging(None, None, 200), (1, 200));
        assert_eq!(paging(Some("0"), Some("-5"), 200), (1, 0));
        assert_eq!(paging(Some("-3"), Some("0"), 200), (1, 0));
        assert_eq!(paging(Some("11"), Some("10"), 200), (11, 10));
        assert_eq!(paging(Some(" 7 "), Some("5000"), 200), (7, 200));
        assert_eq!(paging(Some("abc"), Some("1.5"), 200), (1, 200));
        assert_eq!(paging(Some(""), Some(""), 50), (1, 50));
        assert_eq!(
            paging(Some("99999999999999999999"), None, 200),
            (u64::MAX, 200)
        );
        assert_eq!(
            paging(
                Some("999999999999999999999999999999999999999999"),
                None,
                200
            ),
            (1, 200)
        );
        let v = list_response(vec![json!({"id": "a"})], 42, 11, 1);
        assert_eq!(
            v,
            json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 42, "startIndex": 11,
                   "itemsPerPage": 1, "Resources": [{"id": "a"}]})
        );
    }
}
