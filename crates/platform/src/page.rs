//! Keyset pagination with opaque, tamper-checked page tokens.
//!
//! Ids are UUIDv7, so ordering by id is creation order and the last id of a
//! page is the whole cursor: every list is `WHERE (org_id, …) AND id > $last
//! ORDER BY id LIMIT n + 1` on an index that starts with `org_id`, and a page
//! costs the same on the millionth row as on the first. The token binds the
//! cursor to a hash of the query's filters and is MACed, so an edited token or
//! one replayed against other filters is `INVALID_ARGUMENT`.
//!
//! Lists in a user-chosen order (by `position`) page on `(position, id)`:
//! their tokens ([`PageTokens::parse_keyed`], [`PageTokens::finish_keyed`])
//! carry the position too, so the cursor survives the deletion of the row
//! it names. A token of one kind is refused by the other.

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
/// Tokens of `(position, id)` lists.
const KEYED_VERSION: u8 = 2;
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
    /// The sort key (position) of that row, for keyed lists
    /// ([`PageTokens::parse_keyed`]); `None` otherwise.
    pub after_key: Option<i64>,
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
        self.parse_as(VERSION, page_size, page_token, filters)
    }

    /// [`PageTokens::parse`] for a list ordered by `(key, id)`: the page
    /// starts after [`Page::after_key`] and [`Page::after`].
    pub fn parse_keyed(
        &self,
        page_size: i32,
        page_token: &str,
        filters: &str,
    ) -> Result<Page, Error> {
        self.parse_as(KEYED_VERSION, page_size, page_token, filters)
    }

    fn parse_as(
        &self,
        version: u8,
        page_size: i32,
        page_token: &str,
        filters: &str,
    ) -> Result<Page, Error> {
        if page_size < 0 {
            return Err(Error::invalid_field("page_size", "must not be negative"));
        }
        let size = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let filter_hash = hash_filters(filters);
        let (after, after_key) = if page_token.is_empty() {
            (None, None)
        } else {
            let (id, key) = self.open(version, page_token, &filter_hash)?;
            (Some(id), key)
        };
        Ok(Page {
            size,
            after,
            after_key,
            filter_hash,
        })
    }

    /// Trims a fetched page (queried with [`Page::limit`]) to its size and
    /// returns the next page token, empty on the last page.
    pub fn finish<T>(&self, page: &Page, rows: &mut Vec<T>, id_of: impl Fn(&T) -> Uuid) -> String {
        match trim(page, rows) {
            Some(last) => self.seal(id_of(last), None, &page.filter_hash),
            None => String::new(),
        }
    }

    /// [`PageTokens::finish`] for a list ordered by `(key, id)`: `key_of`
    /// gives both of a row.
    pub fn finish_keyed<T>(
        &self,
        page: &Page,
        rows: &mut Vec<T>,
        key_of: impl Fn(&T) -> (i64, Uuid),
    ) -> String {
        match trim(page, rows) {
            Some(last) => {
                let (key, id) = key_of(last);
                self.seal(id, Some(key), &page.filter_hash)
            }
            None => String::new(),
        }
    }

    fn seal(&self, last: Uuid, key: Option<i64>, filter_hash: &[u8; 8]) -> String {
        let mut buf = Vec::with_capacity(1 + 8 + 16 + 8 + MAC_LEN);
        match key {
            None => buf.push(VERSION),
            Some(k) => {
                buf.push(KEYED_VERSION);
                buf.extend_from_slice(&k.to_be_bytes());
            }
        }
        buf.extend_from_slice(last.as_bytes());
        buf.extend_from_slice(filter_hash);
        let mac = self.mac(&buf);
        buf.extend_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(buf)
    }

    fn open(
        &self,
        version: u8,
        token: &str,
        filter_hash: &[u8; 8],
    ) -> Result<(Uuid, Option<i64>), Error> {
        let bad = || Error::invalid_field("page_token", "is not a page token of this query");
        let buf = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let key_len = if version == KEYED_VERSION { 8 } else { 0 };
        let body_len = 1 + key_len + 16 + 8;
        if buf.len() != body_len + MAC_LEN || buf[0] != version {
            return Err(bad());
        }
        let (body, mac) = buf.split_at(body_len);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).map_err(|_| bad())?;
        m.update(body);
        m.verify_truncated_left(mac).map_err(|_| bad())?;
        let (head, hash) = body.split_at(1 + key_len + 16);
        if hash != filter_hash {
            return Err(Error::invalid_field(
                "page_token",
                "was issued for other filters; start again without it",
            ));
        }
        let key = (key_len == 8)
            .then(|| head[1..9].try_into().map(i64::from_be_bytes))
            .transpose()
            .map_err(|_| bad())?;
        let id = Uuid::from_slice(&head[1 + key_len..]).map_err(|_| bad())?;
        Ok((id, key))
    }

    fn mac(&self, body: &[u8]) -> [u8; 32] {
        // The key is 32 bytes, which HMAC always accepts.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(body);
        m.finalize().into_bytes().into()
    }
}

/// Truncates a fetched page to its size; the last row kept when another
/// page follows.
fn trim<'a, T>(page: &Page, rows: &'a mut Vec<T>) -> Option<&'a T> {
    if rows.len() as i64 <= page.size {
        return None;
    }
    rows.truncate(page.size as usize);
    rows.last()
}

fn hash_filters(filters: &str) -> [u8; 8] {
    let digest = Sha256::digest(filters.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Which way a keyset list walks its id column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Ascending (oldest first): the next page starts after the cursor.
    Oldest,
    /// Descending (newest first): the next page starts before the cursor.
    Newest,
}

/// Ends a keyset list on the id column `key` (after a `WHERE` clause,
/// continued with `AND`): the rows past the cursor `after`, if any, in
/// `walk` order, at most `limit`. Each walk direction is one statement
/// shape, so its plan stays on the index that ends in `key`.
pub fn push_keyset(
    q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
    key: &str,
    walk: Walk,
    after: Option<Uuid>,
    limit: i64,
) {
    let (past, direction) = match walk {
        Walk::Oldest => (">", "ASC"),
        Walk::Newest => ("<", "DESC"),
    };
    if let Some(after) = after {
        q.push(format!(" AND {key} {past} ")).push_bind(after);
    }
    q.push(format!(" ORDER BY {key} {direction} LIMIT "))
        .push_bind(limit);
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
    fn a_keyed_token_carries_the_position_and_is_refused_by_plain_lists() {
        let t = PageTokens::random();
        let page = t.parse_keyed(2, "", "task=1").expect("page");
        let mut rows: Vec<(i64, Uuid)> = vec![
            (1, Uuid::now_v7()),
            (-7, Uuid::now_v7()),
            (9, Uuid::now_v7()),
        ];
        let expected = rows[1];
        let token = t.finish_keyed(&page, &mut rows, |r| *r);
        assert_eq!(rows.len(), 2);
        let next = t.parse_keyed(2, &token, "task=1").expect("next");
        assert_eq!(
            (next.after_key, next.after),
            (Some(expected.0), Some(expected.1))
        );
        assert!(t.parse(2, &token, "task=1").is_err());
        assert!(t.parse_keyed(2, &token, "task=2").is_err());
        let plain = t.finish(&t.parse(1, "", "").expect("plain"), &mut ids(2), |id| *id);
        assert!(t.parse_keyed(1, &plain, "").is_err());
        assert_eq!(t.parse(1, &plain, "").expect("plain").after_key, None);
    }

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        let t = PageTokens::random();
        assert_eq!(t.parse(0, "", "").expect("0").size, DEFAULT_PAGE_SIZE);
        assert_eq!(t.parse(5000, "", "").expect("big").size, MAX_PAGE_SIZE);
        assert!(t.parse(-1, "", "").is_err());
    }
}
