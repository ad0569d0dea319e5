//! Accounts: the pure rules and primitives behind sign-up, sign-in and sessions — email and
//! password rules, argon2id password hashing, session tokens, the default project slug and
//! the CSRF rule for cookie-authenticated requests.

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::ids::random_secret;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ttr_session";

/// How long a session lasts: 5 days.
pub const SESSION_TTL: Duration = Duration::from_secs(5 * 24 * 3600);

/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest password, in bytes (hashing cost grows with the length; nobody needs more).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Longest email, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// argon2id memory cost in KiB (19 MiB), time cost and parallelism: OWASP's recommended
/// minimum for argon2id.
const ARGON2_M_COST: u32 = 19 * 1024;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;

/// A valid argon2id hash with the same parameters as real ones, of a password nobody uses.
/// Signing in with an unknown email verifies against it, so that the answer takes as long as
/// for a known email with a wrong password.
const DUMMY_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
     c2lnbi1pbi10aW1pbmctZHVtbXk$Qe8dCs+A1HRb6UmWUgBR0eMuOMddp1fQwg7yNsP9bNM";

fn argon2() -> Argon2<'static> {
    // The constants are within argon2's limits; fall back to the crate's defaults (the same
    // values) rather than fail.
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Normalises an email for storage and lookup: trimmed and lower-cased. 400 unless it has a
/// non-empty local part and domain around one `@`, no whitespace or control characters, and at
/// most [`MAX_EMAIL_BYTES`] bytes.
pub fn normalize_email(raw: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    let invalid = |why: &str| Err(Error::BadRequest(format!("email {why}")));
    if email.is_empty() {
        return invalid("is required");
    }
    if email.len() > MAX_EMAIL_BYTES {
        return invalid(&format!("must be at most {MAX_EMAIL_BYTES} bytes"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("must not contain spaces or control characters");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => invalid("must look like name@example.com (one @ with text on both sides)"),
    }
}

/// 400 unless the password has at least [`MIN_PASSWORD_CHARS`] characters and at most
/// [`MAX_PASSWORD_BYTES`] bytes.
pub fn validate_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::BadRequest(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::BadRequest(format!(
            "password must have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id and a fresh random salt; returns the PHC string. Slow on
/// purpose (tens of milliseconds): call it off the async runtime's worker threads.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Unavailable(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the PHC string `stored`. With `stored = None` (no such user) it
/// verifies against a dummy hash of the same cost and returns `false`, so both failures take
/// the same time. Slow on purpose: call it off the async runtime's worker threads.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (DUMMY_PASSWORD_HASH, false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// A new session token: 256 random bits, hex-encoded. Only its hash is stored.
pub fn new_session_token() -> String {
    random_secret(32)
}

/// Hex SHA-256 of a session token, as stored. The token has 256 bits of entropy, so a fast
/// hash is enough: a leaked table of hashes cannot be turned back into cookies.
pub fn hash_session_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The slug a user's first project is named after: the email's local part, lower-case, every
/// run of characters outside `[a-z0-9_-]` turned into one `-`, trimmed of `-`, at most 30
/// characters, padded with `-project` to at least 3 characters. The caller makes it unique.
pub fn default_project_slug(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let mut slug = String::with_capacity(local.len());
    for c in local.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_matches('-').chars().take(30).collect();
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.len() < 3 {
        if slug.is_empty() {
            slug.push_str("project");
        } else {
            slug.push_str("-project");
        }
    }
    slug
}

/// The CSRF rule for a request authenticated by the session cookie: a safe method (`GET`,
/// `HEAD`, `OPTIONS`) passes; anything else must declare `content-type: application/json`
/// (parameters allowed), which a cross-site HTML form cannot send without a CORS preflight.
pub fn csrf_allows(method: &str, content_type: Option<&str>) -> bool {
    if matches!(method, "GET" | "HEAD" | "OPTIONS") {
        return true;
    }
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ada.Lovelace@Example.COM ").unwrap(),
            "ada.lovelace@example.com"
        );
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.com",
            "ada@",
            "a@b@c",
            "ada lovelace@example.com",
            "ada\u{0}@example.com",
        ] {
            assert!(
                matches!(normalize_email(bad), Err(Error::BadRequest(_))),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(normalize_email(&long).is_err());
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        // Characters, not bytes.
        assert!(validate_password("ééééééé").is_err());
        assert!(validate_password("éééééééé").is_ok());
        assert!(validate_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_password("correct horse", Some(&a)));
        assert!(!verify_password("wrong horse", Some(&a)));
        assert!(!verify_password("correct horse", Some("not a hash")));
        // Unknown user: never true, whatever the password.
        assert!(!verify_password("correct horse", None));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::new(DUMMY_PASSWORD_HASH).unwrap();
        let real_text = hash_password("whatever-password").unwrap();
        let real = PasswordHash::new(&real_text).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(
            format!("{:?}", dummy.params),
            format!("{:?}", real.params),
            "same memory, time and parallelism costs"
        );
        assert_eq!(
            dummy.hash.map(|h| h.len()),
            real.hash.map(|h| h.len()),
            "same output length"
        );
    }

    #[test]
    fn session_tokens_have_256_bits_and_are_stored_hashed() {
        let t = new_session_token();
        assert_eq!(t.len(), 64);
        assert_ne!(t, new_session_token());
        let h = hash_session_token(&t);
        assert_eq!(h.len(), 64);
        assert_ne!(h, t);
        assert_eq!(h, hash_session_token(&t));
    }

    #[test]
    fn default_slugs_follow_the_slug_rule() {
        assert_eq!(
            default_project_slug("ada.lovelace@example.com"),
            "ada-lovelace"
        );
        assert_eq!(default_project_slug("Bob+Tag@x.io"), "bob-tag");
        assert_eq!(default_project_slug("a@x.io"), "a-project");
        assert_eq!(default_project_slug("...@x.io"), "project");
        assert_eq!(default_project_slug("ünï@x.io"), "n-project");
        assert_eq!(
            default_project_slug(&format!("{}@x.io", "b".repeat(80))).len(),
            30
        );
        assert_eq!(
            default_project_slug("abcdefghijklmnopqrstuvwxyz012-.x@x.io"),
            "abcdefghijklmnopqrstuvwxyz012"
        );
        for email in ["a@x", "ünï@x.io", "x.y.z@q", "__@q", "-a-@q"] {
            let slug = default_project_slug(email);
            assert!((3..=40).contains(&slug.len()), "{slug}");
            assert!(
                slug.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
                "{slug}"
            );
        }
    }

    #[test]
    fn csrf_needs_json_for_unsafe_methods() {
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(csrf_allows(m, None));
        }
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            assert!(!csrf_allows(m, None), "{m}");
            assert!(!csrf_allows(m, Some("text/plain")), "{m}");
            assert!(!csrf_allows(m, Some("application/x-www-form-urlencoded")));
            assert!(!csrf_allows(m, Some("multipart/form-data; boundary=x")));
            assert!(!csrf_allows(m, Some("application/jsonp")));
            assert!(csrf_allows(m, Some("application/json")), "{m}");
            assert!(csrf_allows(m, Some("Application/JSON; charset=utf-8")));
        }
    }
}
