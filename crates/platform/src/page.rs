//! Keyset pagination with opaque, tamper-checked page tokens.
//!
//! Ids are UUIDv7, so ordering by id is creation order and the last id of a
//! page is the whole cursor: every list is `WHERE (org_id, …) AND id > $last
//! ORDER BY id LIMIT n + 1` on an index that starts with `org_id`, and a page
//! costs the same on the millionth row as on the first. The token binds the
//! cursor to a hash of the query's filters and is MACed, so an edited token or
//! one replayed against other filters is `INVALID_ARGUMENT`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Error;

/// Default page size (AIP-158).
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page size; larger requests are clamped.
pub const MAX_PAGE_SIZE: i64 = 1000;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;

/// Signs and checks page tokens. Replicas that serve the same lists share the
/// key (`FOUNDRY_PAGE_TOKEN_KEY`); a token from another key is refused.
#[derive(Clone)]
pub struct PageTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

/// A parsed list request: how many rows, after which id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to return (1..=1000).
    pub size: i64,
    /// The last id of the previous page, if any.
    pub after: Option<Uuid>,
    filter_hash: [u8; 8],
}

impl Page {
    /// The LIMIT to query: one more than the page, to learn whether another
    /// page follows without a count.
    pub fn limit(&self) -> i64 {
        self.size + 1
    }
}

impl PageTokens {
    /// A signer with the given secret (any length; it is hashed).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: Sha256::digest(secret).into(),
        }
    }

    /// A signer with a random key: tokens do not survive a restart.
    pub fn random() -> Self {
        Self {
            key: rand::random(),
        }
    }

    /// Parses `page_size` and `page_token` for a query whose filters are
    /// `filters` (any stable rendering of them).
    pub fn parse(&self, page_size: i32, page_token: &str, filters: &str) -> Result<Page, Error> {
        if page_size < 0 {
            return Err(Error::invalid_field("page_size", "must not be negative"));
        }
        let size = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let filter_hash = hash_filters(filters);
        let after = if page_token.is_empty() {
            None
        } else {
            Some(self.open(page_token, &filter_hash)?)
        };
        Ok(Page {
            size,
            after,
            filter_hash,
        })
    }

    /// Trims a fetched page (queried with [`Page::limit`]) to its size and
    /// returns the next page token, empty on the last page.
    pub fn finish<T>(&self, page: &Page, rows: &mut Vec<T>, id_of: impl Fn(&T) -> Uuid) -> String {
        if rows.len() as i64 <= page.size {
            return String::new();
        }
        rows.truncate(page.size as usize);
        match rows.last() {
            Some(last) => self.seal(id_of(last), &page.filter_hash),
            None => String::new(),
        }
    }

    fn seal(&self, last: Uuid, filter_hash: &[u8; 8]) -> String {
        let mut buf = Vec::with_capacity(1 + 16 + 8 + MAC_LEN);
        buf.push(VERSION);
        buf.extend_from_slice(last.as_bytes());
        buf.extend_from_slice(filter_hash);
        let mac = self.mac(&buf);
        buf.extend_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(buf)
    }

    fn open(&self, token: &str, filter_hash: &[u8; 8]) -> Result<Uuid, Error> {
        let bad = || Error::invalid_field("page_token", "is not a page token of this query");
        let buf = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        if buf.len() != 1 + 16 + 8 + MAC_LEN || buf[0] != VERSION {
            return Err(bad());
        }
        let (body, mac) = buf.split_at(1 + 16 + 8);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).map_err(|_| bad())?;
        m.update(body);
        m.verify_truncated_left(mac).map_err(|_| bad())?;
        if &body[17..25] != filter_hash {
            return Err(Error::invalid_field(
                "page_token",
                "was issued for other filters; start again without it",
            ));
        }
        let id = Uuid::from_slice(&body[1..17]).map_err(|_| bad())?;
        Ok(id)
    }

    fn mac(&self, body: &[u8]) -> [u8; 32] {
        // The key is 32 bytes, which HMAC always accepts.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(body);
        m.finalize().into_bytes().into()
    }
}

fn hash_filters(filters: &str) -> [u8; 8] {
    let digest = Sha256::digest(filters.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::now_v7()).collect()
    }

    #[test]
    fn a_token_round_trips_to_the_last_id_of_the_page() {
        let t = PageTokens::random();
        let page = t.parse(2, "", "role=").expect("page");
        let mut rows = ids(3);
        let expected = rows[1];
        let token = t.finish(&page, &mut rows, |id| *id);
        assert_eq!(rows.len(), 2);
        let next = t.parse(2, &token, "role=").expect("next");
        assert_eq!(next.after, Some(expected));
    }

    #[test]
    fn the_last_page_has_no_token() {
        let t = PageTokens::random();
        let page = t.parse(5, "", "").expect("page");
        let mut rows = ids(5);
        assert_eq!(t.finish(&page, &mut rows, |id| *id), "");
    }

    #[test]
    fn a_tampered_token_is_invalid_argument() {
        let t = PageTokens::random();
        let page = t.parse(1, "", "").expect("page");
        let mut rows = ids(2);
        let token = t.finish(&page, &mut rows, |id| *id);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).expect("b64");
        bytes[5] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(bytes);
        let err = t.parse(1, &forged, "").expect_err("forged");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(t.parse(1, "garbage!", "").is_err());
        assert!(PageTokens::random().parse(1, &token, "").is_err());
    }

    #[test]
    fn a_token_replayed_with_other_filters_is_refused() {
        let t = PageTokens::random();
        let page = t.parse(1, "", "state=1").expect("page");
        let mut rows = ids(2);
        let token = t.finish(&page, &mut rows, |id| *id);
        let err = t.parse(1, &token, "state=2").expect_err("mismatch");
        assert_eq!(err.violations()[0].field, "page_token");
    }

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        let t = PageTokens::random();
        assert_eq!(t.parse(0, "", "").expect("0").size, DEFAULT_PAGE_SIZE);
        assert_eq!(t.parse(5000, "", "").expect("big").size, MAX_PAGE_SIZE);
        assert!(t.parse(-1, "", "").is_err());
    }
}
