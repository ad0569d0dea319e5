//! Identifier newtypes. Ids are opaque strings, unique across projects; jobs and generators
//! share one id space so that `ttr-trigger-id` can name either.

use std::fmt;
use std::sync::Mutex;

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

/// `prefix` + 10 chars of milliseconds + 16 chars (80 bits) that start random at each new
/// millisecond and count up within it, in Crockford base32. So the ids one process makes sort
/// in the order they were made (ties between jobs due at the same instant, broken by id, go
/// first-scheduled first), and ids of different processes still collide with negligible
/// probability (79 random bits per millisecond).
fn new_id(prefix: &str) -> String {
    // (millisecond, last 80-bit value) of the newest id made by this process.
    static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));
    const LOW_80: u128 = (1 << 80) - 1;
    let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let (ms, value) = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let next = if now > last.0 {
            // A fresh start with the top bit clear leaves 2^79 increments before overflow.
            (now, rand::thread_rng().gen::<u128>() & (LOW_80 >> 1))
        } else if last.1 < LOW_80 {
            // Same millisecond (or the wall clock went back): keep counting up.
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, rand::thread_rng().gen::<u128>() & (LOW_80 >> 1))
        };
        *last = next;
        next
    };
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    push_base32(&mut out, u128::from(ms), 10);
    push_base32(&mut out, value, 16);
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
    fn ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000)
            .map(|_| ExecutionId::generate().into_string())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn secrets_have_the_requested_entropy() {
        let s = random_secret(16);
        assert_eq!(s.len(), 32);
        assert_ne!(s, random_secret(16));
    }
}
