//! Input rules for accounts (the limits are documented in README.md).

use super::{ProfilePatch, Registration};
use crate::error::{Error, Result};

/// The account limits.
pub mod limits {
    pub const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=30;
    pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
    pub const EMAIL_MAX_BYTES: usize = 254;
    pub const DISPLAY_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=50;
    pub const BIO_MAX_CHARS: usize = 500;
    pub const AVATAR_ID_MAX_BYTES: usize = 64;
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// 3 to 30 of `[A-Za-z0-9_]`; unique ignoring case.
pub fn username(value: &str) -> Result<()> {
    let valid = limits::USERNAME_CHARS.contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "username",
            "3 to 30 characters of letters, digits and _",
        ))
    }
}

/// A plausible address: one `@`, a dotted domain, no spaces, at most 254 bytes.
pub fn email(value: &str) -> Result<()> {
    let valid = value.len() <= limits::EMAIL_MAX_BYTES
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(())
    } else {
        Err(Error::invalid("email", "not an email address"))
    }
}

pub fn password(field: &'static str, value: &str) -> Result<()> {
    if limits::PASSWORD_CHARS.contains(&chars(value)) {
        Ok(())
    } else {
        Err(Error::invalid(field, "8 to 128 characters"))
    }
}

fn display_name(value: &str) -> Result<String> {
    crate::text::name("displayName", value, *limits::DISPLAY_NAME_CHARS.end())
}

pub fn registration(r: Registration) -> Result<Registration> {
    username(&r.username)?;
    email(&r.email)?;
    password("password", &r.password)?;
    Ok(Registration {
        display_name: display_name(&r.display_name)?,
        ..r
    })
}

/// Whether a typed username-or-email has a length an account's could have.
pub fn login_in_bounds(login: &str) -> bool {
    !login.is_empty() && login.len() <= limits::EMAIL_MAX_BYTES
}

/// Shapes only: a login that cannot match any account still costs a password check.
pub fn login(login: &str, password: &str) -> Result<()> {
    if !login_in_bounds(login) {
        return Err(Error::invalid("username", "1 to 254 characters"));
    }
    if password.is_empty() || chars(password) > *limits::PASSWORD_CHARS.end() {
        return Err(Error::invalid("password", "1 to 128 characters"));
    }
    Ok(())
}

pub fn profile(patch: ProfilePatch) -> Result<ProfilePatch> {
    let display_name = patch
        .display_name
        .as_deref()
        .map(display_name)
        .transpose()?;
    if let Some(bio) = &patch.bio {
        if chars(bio) > limits::BIO_MAX_CHARS {
            return Err(Error::invalid("bio", "at most 500 characters"));
        }
        crate::text::body("bio", bio)?;
    }
    if let Some(avatar) = &patch.avatar_media_id
        && (avatar.len() > limits::AVATAR_ID_MAX_BYTES
            || !avatar.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(Error::invalid(
            "avatarMediaId",
            "at most 64 printable ASCII characters",
        ));
    }
    Ok(ProfilePatch {
        display_name,
        ..patch
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("bob").is_ok());
        assert!(username("Bob_99").is_ok());
        assert!(username("bo").is_err());
        assert!(username(&"a".repeat(31)).is_err());
        assert!(username("bob smith").is_err());
        assert!(username("böb").is_err());
    }

    #[test]
    fn emails() {
        assert!(email("a@example.org").is_ok());
        assert!(email("a@b").is_err());
        assert!(email("@example.org").is_err());
        assert!(email("a@@example.org").is_err());
        assert!(email("a b@example.org").is_err());
        assert!(email(&format!("{}@example.org", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_and_profiles() {
        assert!(password("password", "12345678").is_ok());
        assert!(password("password", "1234567").is_err());
        assert!(password("password", &"x".repeat(129)).is_err());
        let patch = profile(ProfilePatch {
            display_name: Some("  Ann  ".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(patch.display_name.as_deref(), Some("Ann"));
        assert!(
            profile(ProfilePatch {
                bio: Some("x".repeat(501)),
                ..Default::default()
            })
            .is_err()
        );
    }
}
