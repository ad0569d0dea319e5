//! Identifier newtypes. Ids are opaque strings, unique across projects; jobs and generators
//! share one id space so that `ttr-trigger-id` can name either.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every generated id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, unique id.
            pub fn generate() -> Self {
                $name(new_id($prefix))
            }

            /// Wraps an existing id (as read from storage or a request).
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }
    };
}

id_type!(
    /// A project: the unit of isolation for keys, jobs, quotas and rate limits.
    ProjectId,
    "prj_"
);
id_type!(
    /// A job or a generator (one id space).
    JobId,
    "job_"
);
id_type!(
    /// One execution (attempt) of a job.
    ExecutionId,
    "exe_"
);
id_type!(
    /// An API key's public id (not its secret).
    ApiKeyId,
    "key_"
);
id_type!(
    /// A rate-limit rule.
    RateLimitId,
    "rl_"
);
id_type!(
    /// A dashboard user.
    UserId,
    "usr_"
);

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// `prefix` + 10 chars of milliseconds (sortable by creation) + 16 chars of randomness
/// (80 bits) mixed with a process counter, in Crockford base32.
fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let mut rng = rand::thread_rng();
    let random: u128 = rng.gen::<u128>() ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    push_base32(&mut out, u128::from(ms), 10);
    push_base32(&mut out, random, 16);
    out
}

fn push_base32(out: &mut String, value: u128, digits: u32) {
    for i in (0..digits).rev() {
        let idx = ((value >> (i * 5)) & 31) as usize;
        out.push(char::from(ALPHABET[idx]));
    }
}

/// A fresh random secret of `bytes` bytes, hex-encoded.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_prefixed_and_sortable_by_time() {
        let ids: Vec<JobId> = (0..10_000).map(|_| JobId::generate()).collect();
        let set: HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|id| id.as_str().starts_with("job_")));
        assert!(ids.iter().all(|id| id.as_str().len() == 4 + 26));
    }

    #[test]
    fn secrets_have_the_requested_entropy() {
        let s = random_secret(16);
        assert_eq!(s.len(), 32);
        assert_ne!(s, random_secret(16));
    }
}
