//! Named volumes: where a database keeps its data, created with Rivetr's labels so cleanup
//! can tell its own from anyone else's, and kept when the container goes.

use std::collections::{BTreeMap, HashMap};

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};

use super::compat::{CALL_TIMEOUT, Compat};
use super::error::Subject;
use super::{LabelFilter, RuntimeError, VolumeInfo};

impl Compat {
    /// The volume named `name`, created with `labels` when missing.
    pub(crate) async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolumeInfo, RuntimeError> {
        if let Some(existing) = self.inspect_volume(name).await? {
            return Ok(existing);
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..VolumeCreateRequest::default()
        };
        let volume = self
            .call(
                CALL_TIMEOUT,
                Subject::Volume(name),
                self.docker.create_volume(request),
            )
            .await?;
        Ok(VolumeInfo {
            name: volume.name,
            mountpoint: volume.mountpoint,
            labels: volume.labels.into_iter().collect(),
        })
    }

    pub(crate) async fn inspect_volume(
        &self,
        name: &str,
    ) -> Result<Option<VolumeInfo>, RuntimeError> {
        match self
            .call(
                CALL_TIMEOUT,
                Subject::Volume(name),
                self.docker.inspect_volume(name),
            )
            .await
        {
            Ok(volume) => Ok(Some(VolumeInfo {
                name: volume.name,
                mountpoint: volume.mountpoint,
                labels: volume.labels.into_iter().collect(),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Volumes carrying all of `labels`.
    pub(crate) async fn list_volumes(
        &self,
        labels: &[LabelFilter],
    ) -> Result<Vec<VolumeInfo>, RuntimeError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_owned(),
            labels.iter().map(LabelFilter::as_filter).collect(),
        )]);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .call(
                CALL_TIMEOUT,
                Subject::Engine,
                self.docker.list_volumes(Some(options)),
            )
            .await?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                mountpoint: v.mountpoint,
                labels: v.labels.into_iter().collect(),
            })
            .filter(|v| labels.iter().all(|f| f.matches(&v.labels)))
            .collect())
    }

    /// Removes a volume; one that does not exist is not an error.
    pub(crate) async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match self
            .call(
                CALL_TIMEOUT,
                Subject::Volume(name),
                self.docker.remove_volume(name, Some(options)),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}
