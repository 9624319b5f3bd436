//! Microsoft clouds and their documented hosts; every endpoint overridable.

/// A Microsoft cloud (national clouds have their own sign-in and Graph hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Cloud {
    /// The global service: `login.microsoftonline.com`, `graph.microsoft.com`.
    #[default]
    Global,
    /// US Government L4 (GCC High): `login.microsoftonline.us`, `graph.microsoft.us`.
    UsGovHigh,
    /// US Government L5 (DoD): `login.microsoftonline.us`, `dod-graph.microsoft.us`.
    UsGovDod,
    /// China, operated by 21Vianet: `login.chinacloudapi.cn`, `microsoftgraph.chinacloudapi.cn`.
    China,
}

impl Cloud {
    /// The cloud by its job-file name: `global`, `gcc-high`, `dod`, `china` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" => Some(Self::Global),
            "gcc-high" | "gcchigh" | "usgovhigh" | "l4" => Some(Self::UsGovHigh),
            "dod" | "usgovdod" | "l5" => Some(Self::UsGovDod),
            "china" | "21vianet" => Some(Self::China),
            _ => None,
        }
    }

    /// The job-file name: `global`, `gcc-high`, `dod`, `china`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::UsGovHigh => "gcc-high",
            Self::UsGovDod => "dod",
            Self::China => "china",
        }
    }

    /// The documented endpoints of this cloud.
    pub fn endpoints(self) -> Endpoints {
        let (authority, graph, exchange) = match self {
            Self::Global => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
                "https://outlook.office365.com",
            ),
            Self::UsGovHigh => (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
                "https://outlook.office365.us",
            ),
            Self::UsGovDod => (
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
                "https://outlook-dod.office365.us",
            ),
            Self::China => (
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://partner.outlook.cn",
            ),
        };
        Endpoints {
            authority: authority.into(),
            graph: graph.into(),
            graph_resource: graph.into(),
            exchange: exchange.into(),
            upload_sessions: !matches!(self, Self::UsGovHigh | Self::UsGovDod),
        }
    }
}

/// Where to sign in and where Graph lives. Start from [`Cloud::endpoints`] and override fields
/// for proxies or the emulator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// Identity platform host, without a trailing slash; the token URL is
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub authority: String,
    /// Graph host without the version; requests go to `{graph}/v1.0/...`.
    pub graph: String,
    /// The resource the token is for; the scope is `{graph_resource}/.default`. Keep the cloud's
    /// real Graph URL here when `graph` points at a proxy.
    pub graph_resource: String,
    /// Exchange Online host (the IMAP writer's token resource).
    pub exchange: String,
    /// Whether attachment upload sessions are available (not in GCC High and DoD).
    pub upload_sessions: bool,
}

impl Endpoints {
    /// Endpoints for a local emulator at `base` (`http://127.0.0.1:PORT`): authority and Graph
    /// both at `base`, token resource the global Graph.
    pub fn emulator(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_string();
        Self {
            authority: base.clone(),
            graph: base.clone(),
            graph_resource: "https://graph.microsoft.com".into(),
            exchange: base,
            upload_sessions: true,
        }
    }

    /// The token URL for `tenant`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}/oauth2/v2.0/token",
            self.authority.trim_end_matches('/')
        )
    }

    /// The device-code URL for `tenant`.
    pub fn devicecode_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}/oauth2/v2.0/devicecode",
            self.authority.trim_end_matches('/')
        )
    }

    /// The app-only Exchange Online scope (IMAP `IMAP.AccessAsApp`, EWS),
    /// `{exchange}/.default`, e.g. `https://outlook.office365.com/.default`.
    pub fn exchange_scope(&self) -> String {
        format!("{}/.default", self.exchange.trim_end_matches('/'))
    }

    /// The app-only Graph scope, `{graph_resource}/.default`.
    pub fn graph_scope(&self) -> String {
        format!("{}/.default", self.graph_resource.trim_end_matches('/'))
    }
}

impl std::fmt::Display for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a cloud from its job-file name (see [`Cloud::from_name`]).
impl<'de> serde::Deserialize<'de> for Cloud {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Cloud::from_name(&name).ok_or_else(|| {
            serde::de::Error::unknown_variant(&name, &["global", "gcc-high", "dod", "china"])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_hosts() {
        let dod = Cloud::UsGovDod.endpoints();
        assert_eq!(dod.graph, "https://dod-graph.microsoft.us");
        assert!(!dod.upload_sessions);
        let cn = Cloud::from_name("China").map(Cloud::endpoints);
        assert_eq!(
            cn.map(|e| e.authority),
            Some("https://login.chinacloudapi.cn".into())
        );
        let g = Cloud::Global.endpoints();
        assert_eq!(
            g.token_url("contoso.com"),
            "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
        );
        assert_eq!(g.graph_scope(), "https://graph.microsoft.com/.default");
        assert_eq!(g.exchange_scope(), "https://outlook.office365.com/.default");
        assert_eq!(
            Cloud::UsGovHigh.endpoints().exchange,
            "https://outlook.office365.us"
        );
    }
}
