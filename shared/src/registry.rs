//! Definitions by (name, version). A registered version is immutable: registering it again
//! with the same content is a no-op, with other content it is refused. "Latest" is the
//! highest semantic version (9.0.0 < 10.0.0), pre-releases only when there is no release.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::definition::{compile, DefinitionError, Workflow};
use crate::model::Definition;

/// Why a definition was not registered or found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    /// The definition is invalid.
    #[error(transparent)]
    Invalid(#[from] DefinitionError),
    /// The same (name, version) is registered with other content.
    #[error(
        "{name}@{version} is already registered with other content: \
         definitions are immutable, register a new version"
    )]
    Conflict {
        /// The workflow name.
        name: String,
        /// The version already registered with different content.
        version: String,
    },
    /// No such workflow (or version).
    #[error("unknown workflow {name}{}", version.as_ref().map(|v| format!("@{v}")).unwrap_or_default())]
    Unknown {
        /// The workflow name asked for.
        name: String,
        /// Version, when one was asked for.
        version: Option<String>,
    },
}

/// Registered workflows. Cheap to share: clone the `Arc` it lives in.
#[derive(Debug, Default)]
pub struct Registry {
    by_name: RwLock<HashMap<String, BTreeMap<semver::Version, Arc<Workflow>>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Checks and registers a definition. Returns the compiled workflow (the one already
    /// registered, when the content is identical).
    pub fn register_definition(&self, def: Definition) -> Result<Arc<Workflow>, RegistryError> {
        let wf = compile(def)?;
        self.insert(Arc::new(wf))
    }

    /// Registers an already compiled workflow, with the same immutability rule.
    pub fn insert(&self, wf: Arc<Workflow>) -> Result<Arc<Workflow>, RegistryError> {
        let mut map = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        let versions = map.entry(wf.name.to_string()).or_default();
        if let Some(existing) = versions.get(&wf.semver) {
            if existing.fingerprint == wf.fingerprint {
                return Ok(existing.clone());
            }
            return Err(RegistryError::Conflict {
                name: wf.name.to_string(),
                version: wf.version.to_string(),
            });
        }
        versions.insert(wf.semver.clone(), wf.clone());
        Ok(wf)
    }

    /// A version of a workflow, or its latest when `version` is `None`.
    pub fn get_definition(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Workflow>, RegistryError> {
        let unknown = || RegistryError::Unknown {
            name: name.to_string(),
            version: version.map(str::to_string),
        };
        let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        let versions = map.get(name).ok_or_else(unknown)?;
        match version {
            Some(v) => {
                let v = semver::Version::parse(v.trim()).map_err(|_| unknown())?;
                versions.get(&v).cloned().ok_or_else(unknown)
            }
            None => latest(versions).ok_or_else(unknown),
        }
    }

    /// Whether a workflow (a version of it, when given) is registered.
    pub fn has_definition(&self, name: &str, version: Option<&str>) -> bool {
        self.get_definition(name, version).is_ok()
    }

    /// Every registered workflow version, by name then version.
    pub fn list_definitions(&self) -> Vec<Arc<Workflow>> {
        let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        names
            .into_iter()
            .flat_map(|n| map[n].values().cloned())
            .collect()
    }
}

/// The highest release, or the highest pre-release when there is no release.
pub fn latest(versions: &BTreeMap<semver::Version, Arc<Workflow>>) -> Option<Arc<Workflow>> {
    versions
        .iter()
        .rev()
        .find(|(v, _)| v.pre.is_empty())
        .or_else(|| versions.iter().next_back())
        .map(|(_, wf)| wf.clone())
}
