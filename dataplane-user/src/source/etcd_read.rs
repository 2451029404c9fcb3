//! The full read of etcd: every key under a prefix at one revision, page
//! by page. etcd answers a range in one gRPC message, and the client
//! refuses a message over 4 MiB (tonic's default): one range of a cloud's
//! ports (1-2 KB each as Neutron's API returns them) passes that at a few
//! thousand ports, and the read then failed on every attempt. Pages also
//! let the caller turn each page into objects and drop its bytes before
//! the next comes.

use anyhow::Result;
use etcd_client::{Client, GetOptions, KeyValue};

/// Keys per page: well under the message limit for Neutron's objects.
const PAGE: i64 = 500;
/// The largest answer taken (a page of unusually large objects, such as
/// security groups of many rules, passes; etcd's values are at most
/// 1.5 MiB by default).
const MAX_MESSAGE: usize = 64 << 20;

/// Reads every key under `prefix` at one revision, handing each page to
/// `page` in key order; returns that revision. A revision compacted
/// meanwhile fails the read (the caller reads again).
pub async fn read_all(
    client: &Client,
    prefix: &str,
    mut page: impl FnMut(Vec<KeyValue>),
) -> Result<i64> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    let end = range_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let mut resp = kv.get(from.clone(), Some(options)).await?;
        if revision == 0 {
            revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        }
        let kvs = resp.take_kvs();
        let Some(last) = kvs.last() else {
            return Ok(revision);
        };
        from = after(last.key());
        page(kvs);
        if !resp.more() {
            return Ok(revision);
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's prefix
/// rule: the prefix with its last byte below 0xff incremented).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("not empty") += 1;
            return end;
        }
        end.pop();
    }
    // Every byte 0xff (or none): to the end of the keyspace.
    vec![0]
}

/// The first key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_where_its_last_byte_is_incremented() {
        assert_eq!(range_end(b"/aap/"), b"/aap0".to_vec());
        assert_eq!(range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(range_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn the_next_page_starts_just_after_the_last_key() {
        assert_eq!(after(b"/aap/x"), b"/aap/x\0".to_vec());
        assert!(after(b"/aap/x").as_slice() > b"/aap/x".as_slice());
        assert!(after(b"/aap/x").as_slice() < b"/aap/x0".as_slice());
    }
}
