//! etcd users and roles for least-privilege deployments (`nightshift
//! etcd-roles --apply`): outside the `Coordinator` trait, which is about
//! what Nightshift's components need at run time, not administration.

use super::{convert, EtcdCoordinator};
use crate::CoordError;
use etcd_client as ec;

/// One key-range permission of a role: every key starting with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key prefix.
    pub prefix: String,
    /// Read and write (else read only).
    pub write: bool,
}

/// A role and the user of the same name that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    /// Role and user name.
    pub name: String,
    /// What it may read and write.
    pub grants: Vec<Grant>,
}

/// Whether an error only says that the thing exists already.
fn exists(e: &ec::Error) -> bool {
    e.to_string().contains("already exists")
}

impl EtcdCoordinator {
    /// Creates `role` and a user of the same name holding it (or, when they
    /// exist, sets the password and adds the grants). Needs a root login.
    pub async fn ensure_role_and_user(
        &self,
        role: &RoleSpec,
        password: &str,
    ) -> Result<(), CoordError> {
        let mut client = self.client.clone();
        let map = |e: ec::Error| convert::error(e, None);
        if let Err(e) = client.role_add(role.name.as_str()).await {
            if !exists(&e) {
                return Err(map(e));
            }
        }
        for grant in &role.grants {
            let key = grant.prefix.as_bytes().to_vec();
            let permission = if grant.write {
                ec::Permission::read_write(key)
            } else {
                ec::Permission::read(key)
            }
            .with_prefix();
            client
                .role_grant_permission(role.name.as_str(), permission)
                .await
                .map_err(map)?;
        }
        match client.user_add(role.name.as_str(), password, None).await {
            Ok(_) => {}
            Err(e) if exists(&e) => {
                client
                    .user_change_password(role.name.as_str(), password)
                    .await
                    .map_err(map)?;
            }
            Err(e) => return Err(map(e)),
        }
        client
            .user_grant_role(role.name.as_str(), role.name.as_str())
            .await
            .map_err(map)?;
        Ok(())
    }
}
