use serde::Deserialize;

/// `GET /api/whoami-v2`, decoded. Unknown keys are ignored.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// `user`, `org` or `app`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Account id.
    #[serde(default)]
    pub id: String,
    /// User name: the default Jobs namespace.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub fullname: Option<String>,
    /// Whether the account can pay.
    #[serde(default)]
    pub can_pay: Option<bool>,
    /// Pro plan.
    #[serde(default)]
    pub is_pro: Option<bool>,
    /// Organisations the user belongs to.
    #[serde(default)]
    pub orgs: Vec<OrgInfo>,
    /// How the request authenticated.
    #[serde(default)]
    pub auth: Option<AuthInfo>,
}

/// One organisation of the user.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrgInfo {
    /// Org name (a possible namespace).
    pub name: String,
    /// The user's role in the org (`admin`, `write`, `contributor`, `read`) when reported.
    #[serde(default)]
    pub role_in_org: Option<String>,
    /// Plan (`team`, `enterprise`, ...).
    #[serde(default)]
    pub plan: Option<String>,
    /// Whether the org can pay.
    #[serde(default)]
    pub can_pay: Option<bool>,
}

/// `auth` in whoami-v2.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthInfo {
    /// `access_token`, `oauth`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The token's metadata (never its value).
    #[serde(default)]
    pub access_token: Option<AccessToken>,
}

/// Token metadata.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    /// The name given at creation.
    #[serde(default)]
    pub display_name: String,
    /// `read`, `write`, `fineGrained` or `admin`.
    #[serde(default)]
    pub role: String,
    /// Fine-grained scopes, for `fineGrained` tokens.
    #[serde(default)]
    pub fine_grained: Option<FineGrained>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Expiry, if any.
    #[serde(default)]
    pub expiration: Option<String>,
}

/// The scopes of a fine-grained token.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FineGrained {
    /// Permissions on every repo/namespace the user can reach (e.g. `repo.write`).
    #[serde(default)]
    pub global: Vec<String>,
    /// Permissions limited to one entity.
    #[serde(default)]
    pub scoped: Vec<ScopedPermission>,
    /// Whether the token can read gated repos.
    #[serde(default)]
    pub can_read_gated_repos: Option<bool>,
}

/// Permissions on one entity (a user, org or repo).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ScopedPermission {
    /// The entity.
    pub entity: ScopeEntity,
    /// e.g. `repo.content.read`, `repo.write`, `job.write`.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// The entity of a scoped permission.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ScopeEntity {
    /// `user`, `org`, `model`, `dataset` or `space`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name (`alice`, `acme-ml`, `alice/my-model`).
    pub name: String,
}

impl WhoAmI {
    /// The token role (`read`, `write`, `fineGrained`, `admin`), if reported.
    pub fn token_role(&self) -> Option<&str> {
        self.access_token().map(|t| t.role.as_str())
    }

    /// The token's metadata, if reported.
    pub fn access_token(&self) -> Option<&AccessToken> {
        self.auth.as_ref().and_then(|a| a.access_token.as_ref())
    }

    /// The user's own name followed by every org name: the namespaces one may pick.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.name.clone())
            .chain(self.orgs.iter().map(|o| o.name.clone()))
            .collect()
    }

    /// Decode a whoami-v2 body.
    pub fn from_json(body: &str) -> Result<WhoAmI, crate::HfError> {
        serde_json::from_str(body).map_err(|e| crate::HfError::Decode {
            what: "whoami-v2".into(),
            detail: e.to_string(),
        })
    }
}
