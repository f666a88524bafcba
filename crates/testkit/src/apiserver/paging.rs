//! List pagination (`limit` and `continue`), as a real API server serves large lists.
//!
//! A client that sends `limit` (kube-rs' `watcher` asks for pages of 500) gets at most that many items and a
//! `continue` token for the rest, so it never holds a whole large list at once. The token names the
//! resourceVersion the first page was served at and where the next page starts; since this server keeps no
//! snapshots, a token becomes stale as soon as anything changes and is answered with `410 Expired`, as a real
//! server answers a token whose snapshot was compacted (clients then list again from the start).

/// Why a page cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum PageError {
    /// The token is not one this server handed out (400).
    Invalid(String),
    /// Something changed since the token was handed out (410 Expired).
    Expired(String),
}

/// The page of `items` (every matching object, in key order) that `limit` and `token` ask for, and the token
/// of the page after it, if any. `rv` is the store's current resourceVersion.
pub fn page<T>(
    mut items: Vec<T>,
    limit: Option<&str>,
    token: Option<&str>,
    rv: u64,
) -> Result<(Vec<T>, Option<String>), PageError> {
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            let parsed = t
                .split_once('/')
                .and_then(|(r, o)| Some((r.parse::<u64>().ok()?, o.parse::<usize>().ok()?)));
            let Some((token_rv, offset)) = parsed else {
                return Err(PageError::Invalid(format!("invalid continue token {t:?}")));
            };
            if token_rv != rv {
                return Err(PageError::Expired(
                    "the provided continue parameter is too old to display a consistent list result"
                        .into(),
                ));
            }
            offset
        }
    };
    let mut rest = items.split_off(start.min(items.len()));
    match limit
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
    {
        Some(limit) if rest.len() > limit => {
            rest.truncate(limit);
            Ok((rest, Some(format!("{rv}/{}", start + limit))))
        }
        _ => Ok((rest, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_until_the_last() {
        let items: Vec<u32> = (0..5).collect();
        let (first, token) = page(items.clone(), Some("2"), None, 7).unwrap();
        assert_eq!((first, token.as_deref()), (vec![0, 1], Some("7/2")));
        let (second, token) = page(items.clone(), Some("2"), token.as_deref(), 7).unwrap();
        assert_eq!((second, token.as_deref()), (vec![2, 3], Some("7/4")));
        let (last, token) = page(items.clone(), Some("2"), token.as_deref(), 7).unwrap();
        assert_eq!((last, token), (vec![4], None));
    }

    #[test]
    fn no_limit_or_zero_is_everything() {
        let items: Vec<u32> = (0..3).collect();
        assert_eq!(
            page(items.clone(), None, None, 1).unwrap(),
            (items.clone(), None)
        );
        assert_eq!(
            page(items.clone(), Some("0"), None, 1).unwrap(),
            (items.clone(), None)
        );
        assert_eq!(
            page(items.clone(), Some("3"), None, 1).unwrap(),
            (items, None)
        );
    }

    #[test]
    fn stale_and_foreign_tokens_are_refused() {
        let items: Vec<u32> = (0..3).collect();
        assert!(matches!(
            page(items.clone(), Some("1"), Some("6/1"), 7),
            Err(PageError::Expired(_))
        ));
        assert!(matches!(
            page(items, Some("1"), Some("garbage"), 7),
            Err(PageError::Invalid(_))
        ));
    }
}
