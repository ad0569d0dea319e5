use crate::ids::UserId;
use crate::time::Timestamp;

/// A dashboard user: signs in with an email and a password and owns projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Normalised email (trimmed, lower-case), unique.
    pub email: String,
    /// When the account was created.
    pub created_at: Timestamp,
}

/// A user as found by email at sign-in: the user and the stored password hash (an argon2id
/// PHC string) to verify the password against.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// The argon2id PHC string of the password.
    pub password_hash: String,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A live session, as found by its token: whose it is and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The signed-in user.
    pub user: User,
    /// The session ends at this instant.
    pub expires_at: Timestamp,
}
