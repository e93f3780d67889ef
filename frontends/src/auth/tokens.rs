//! Access tokens: EdDSA (Ed25519) JWTs that live `auth.access_token_ttl_secs` (15 minutes by
//! default), carry the user (`sub`) and the session (`sid`), and are verified strictly: the
//! algorithm is pinned to EdDSA, the key is chosen by `kid` among ours only, and `exp`, `nbf`,
//! `iss` and `aud` are required and checked. A token that passed is remembered (a bounded
//! cache keyed by the whole token, `cache.verified_tokens`) until it expires, so a client's
//! every request costs one hash lookup instead of an Ed25519 verification; the token's
//! session is still checked on every request, so revocation stays immediate.

use super::keys::KeyFile;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use girok_schemas::{SessionId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// What an access token says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub sid: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Signs with the newest key, verifies with any of ours.
pub struct Tokens {
    signing: EncodingKey,
    signing_kid: String,
    verifying: HashMap<String, DecodingKey>,
    jwks: Value,
    issuer: String,
    audience: String,
    pub ttl_secs: i64,
    /// Tokens that verified: `(user, session, exp)`.
    verified: quick_cache::sync::Cache<String, (UserId, SessionId, i64)>,
}

/// Seconds a token is still accepted after its `exp` (clock skew between servers).
const LEEWAY_SECS: i64 = 5;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Tokens {
    pub fn new(
        keys: &KeyFile,
        issuer: &str,
        audience: &str,
        ttl_secs: i64,
        verified_capacity: usize,
    ) -> anyhow::Result<Self> {
        let newest = keys
            .keys
            .last()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        let signing = EncodingKey::from_ed_der(&newest.pkcs8_der()?);
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for key in &keys.keys {
            let x = URL_SAFE_NO_PAD.encode(key.public_key()?);
            verifying.insert(key.kid.clone(), DecodingKey::from_ed_components(&x)?);
            jwks.push(json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key.kid, "x": x }));
        }
        Ok(Self {
            signing,
            signing_kid: newest.kid.clone(),
            verifying,
            jwks: json!({ "keys": jwks }),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
            verified: quick_cache::sync::Cache::new(verified_capacity.max(1)),
        })
    }

    /// A new access token for a session.
    pub fn issue(&self, user: UserId, session: SessionId) -> anyhow::Result<String> {
        let now = now_secs();
        let claims = Claims {
            sub: user.to_string(),
            sid: session.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.signing)?)
    }

    /// The user and session of a valid token, and the last second (Unix time) it is accepted
    /// (its `exp` plus the leeway); `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<(UserId, SessionId, i64)> {
        let now = now_secs();
        if let Some((user, session, exp)) = self.verified.get(token) {
            if now <= exp + LEEWAY_SECS {
                return Some((user, session, exp + LEEWAY_SECS));
            }
            self.verified.remove(token);
            return None;
        }
        let (user, session, exp) = self.verify_signed(token)?;
        self.verified.insert(token.to_owned(), (user, session, exp));
        Some((user, session, exp + LEEWAY_SECS))
    }

    /// The cryptographic check alone, without the cache: `(user, session, exp)`.
    pub fn verify_signed(&self, token: &str) -> Option<(UserId, SessionId, i64)> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::EdDSA {
            return None;
        }
        let key = self.verifying.get(header.kid.as_deref()?)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS as u64;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .ok()?
            .claims;
        Some((
            claims.sub.parse().ok()?,
            claims.sid.parse().ok()?,
            claims.exp,
        ))
    }

    /// The public keys, as `/.well-known/jwks.json` serves them.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}
