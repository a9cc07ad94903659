//! Private networks: a database's own internal network, and the network of each app linked
//! to a database, which the database joins at a fixed address.
//!
//! Rivetr picks each network's subnet itself (a free /24 in [`PRIVATE_RANGE`]), because a
//! container can be given a fixed address only on a network with a configured subnet (Docker
//! refuses it otherwise), and a fixed address is what lets an app reach its database on
//! every engine: Podman 4.3 with CNI, as Debian 12 ships it, has no DNS on its networks.
//! The engines hand out addresses from the bottom of the /24 (.2 up) and skip taken ones;
//! fixed addresses are taken from the top ([`NetworkInfo::fixed_address`]). A range for the
//! engine's picks cannot be set instead: Podman's CNI host-local then refuses any fixed
//! address outside it.
//!
//! Why an app joins one network and the database comes to it, rather than the app joining
//! the database's network as a second one: rootful Podman 4.3 (CNI) sets up a published
//! port on every network of a container, in no fixed order, and when the internal network's
//! rule came first (about one start in ten, measured) the app's 127.0.0.1 port led nowhere.
//!
//! Internal networks (measured on rootful Podman 4.3 with CNI, Docker 20.10 and rootless
//! Podman 4.3): no container on another network reaches an address on them, while the
//! containers attached to one reach each other.

#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::Ipv4Addr;

use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkInspect,
};
use bollard::query_parameters::ListNetworksOptionsBuilder;

use super::compat::{CALL_TIMEOUT, Compat};
use super::error::Subject;
use super::{LabelFilter, NetworkInfo, NetworkSpec, RuntimeError};

/// Where private networks' subnets come from: 10.213.0.0/16, one /24 each. Chosen away from
/// the engines' own defaults (Podman 10.88/10.89, Docker 172.17-31 and 192.168).
pub const PRIVATE_RANGE: (u8, u8) = (10, 213);

/// How many /24 blocks are tried when the engine refuses one as overlapping.
const SUBNET_ATTEMPTS: usize = 16;

impl Compat {
    /// The network `spec` names, created on a free /24 when missing. An existing network is
    /// returned as it is (an earlier run of Rivetr created it).
    pub(crate) async fn ensure_network(
        &self,
        spec: &NetworkSpec,
    ) -> Result<NetworkInfo, RuntimeError> {
        let name = spec.name.as_str();
        if let Some(existing) = self.inspect_network(name).await? {
            return Ok(existing);
        }
        let taken: Vec<u8> = self
            .list_networks(&[])
            .await?
            .iter()
            .filter_map(|n| n.subnet.as_deref().and_then(third_octet_in_range))
            .collect();
        let mut last_error = None;
        for third in candidate_blocks(name, &taken).take(SUBNET_ATTEMPTS) {
            let request = network_request(spec, third);
            match self
                .call(
                    CALL_TIMEOUT,
                    Subject::Network(name),
                    self.docker.create_network(request),
                )
                .await
            {
                Ok(_) => {
                    return self.inspect_network(name).await?.ok_or_else(|| {
                        RuntimeError::Protocol(format!("network {name} vanished after creation"))
                    });
                }
                // Overlapping a network or route the listing did not show: the next block.
                Err(RuntimeError::Engine { message, .. }) if is_overlap(&message) => {
                    last_error = Some(message);
                }
                // Another task created it meanwhile.
                Err(RuntimeError::Engine { status: 409, .. }) => {
                    if let Some(existing) = self.inspect_network(name).await? {
                        return Ok(existing);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(RuntimeError::Engine {
            status: 409,
            message: format!(
                "no free /24 subnet in {}.{}.0.0/16 for network {name} after {SUBNET_ATTEMPTS} tries: {}",
                PRIVATE_RANGE.0,
                PRIVATE_RANGE.1,
                last_error.unwrap_or_default()
            ),
        })
    }

    pub(crate) async fn inspect_network(
        &self,
        name: &str,
    ) -> Result<Option<NetworkInfo>, RuntimeError> {
        match self
            .call(
                CALL_TIMEOUT,
                Subject::Network(name),
                self.docker.inspect_network(
                    name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                ),
            )
            .await
        {
            Ok(inspect) => Ok(Some(network_info(inspect))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Networks carrying all of `labels` (every network when empty).
    pub(crate) async fn list_networks(
        &self,
        labels: &[LabelFilter],
    ) -> Result<Vec<NetworkInfo>, RuntimeError> {
        let filters: HashMap<String, Vec<String>> = if labels.is_empty() {
            HashMap::new()
        } else {
            HashMap::from([(
                "label".to_owned(),
                labels.iter().map(LabelFilter::as_filter).collect(),
            )])
        };
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .call(
                CALL_TIMEOUT,
                Subject::Engine,
                self.docker.list_networks(Some(options)),
            )
            .await?;
        Ok(networks
            .into_iter()
            .map(|n| {
                network_info(NetworkInspect {
                    name: n.name,
                    id: n.id,
                    internal: n.internal,
                    ipam: n.ipam,
                    labels: n.labels,
                    ..NetworkInspect::default()
                })
            })
            .filter(|n| labels.iter().all(|f| f.matches(&n.labels)))
            .collect())
    }

    /// Removes a network; one that does not exist is not an error.
    pub(crate) async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .call(
                CALL_TIMEOUT,
                Subject::Network(name),
                self.docker.remove_network(name),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Detaches a container from a network; one not attached is not an error.
    pub(crate) async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
    ) -> Result<(), RuntimeError> {
        let request = bollard::models::NetworkDisconnectRequest {
            container: container.to_owned(),
            force: Some(true),
        };
        match self
            .call(
                CALL_TIMEOUT,
                Subject::Network(network),
                self.docker.disconnect_network(network, request),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            Err(RuntimeError::Engine { message, .. })
                if message.to_ascii_lowercase().contains("not connected") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Attaches a container (created or running) to a network, at a fixed address when given.
    pub(crate) async fn connect_network(
        &self,
        network: &str,
        container: &str,
        ipv4: Option<Ipv4Addr>,
    ) -> Result<(), RuntimeError> {
        let request = NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(endpoint(ipv4)),
        };
        self.call(
            CALL_TIMEOUT,
            Subject::Network(network),
            self.docker.connect_network(network, request),
        )
        .await
    }
}

/// An endpoint at a fixed address, or wherever the engine puts it.
pub(crate) fn endpoint(ipv4: Option<Ipv4Addr>) -> EndpointSettings {
    EndpointSettings {
        ipam_config: ipv4.map(|ip| EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..EndpointIpamConfig::default()
        }),
        ..EndpointSettings::default()
    }
}

fn network_request(spec: &NetworkSpec, third: u8) -> NetworkCreateRequest {
    let (a, b) = PRIVATE_RANGE;
    NetworkCreateRequest {
        name: spec.name.clone(),
        driver: Some("bridge".to_owned()),
        internal: Some(spec.internal),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(format!("{a}.{b}.{third}.0/24")),
                gateway: Some(format!("{a}.{b}.{third}.1")),
                ..IpamConfig::default()
            }]),
            ..Ipam::default()
        }),
        labels: Some(spec.labels.clone().into_iter().collect()),
        ..NetworkCreateRequest::default()
    }
}

fn network_info(inspect: NetworkInspect) -> NetworkInfo {
    let first = inspect
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().find(|c| c.subnet.is_some()));
    NetworkInfo {
        name: inspect.name.unwrap_or_default(),
        id: inspect.id.unwrap_or_default(),
        internal: inspect.internal.unwrap_or(false),
        subnet: first.as_ref().and_then(|c| c.subnet.clone()),
        gateway: first.and_then(|c| c.gateway),
        labels: inspect.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// The third octet of a subnet inside [`PRIVATE_RANGE`], such as 7 for `10.213.7.0/24`.
fn third_octet_in_range(subnet: &str) -> Option<u8> {
    let (address, _) = subnet.split_once('/')?;
    let ip: Ipv4Addr = address.parse().ok()?;
    let [a, b, c, _] = ip.octets();
    ((a, b) == PRIVATE_RANGE).then_some(c)
}

/// /24 blocks to try for `name`: starting at a place that depends on the name (so two
/// installations rarely race for the same block), skipping taken ones, never 0 or 255.
fn candidate_blocks<'a>(name: &str, taken: &'a [u8]) -> impl Iterator<Item = u8> + 'a {
    let start = name.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    (0..254u32)
        .map(move |i| ((start + i) % 254 + 1) as u8)
        .filter(move |c| !taken.contains(c))
}

fn is_overlap(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("overlap") || lower.contains("already used") || lower.contains("in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_skip_taken_blocks_and_the_edges() {
        let first: Vec<u8> = candidate_blocks("rivetr-db-a", &[]).take(254).collect();
        assert_eq!(first.len(), 254);
        assert!(first.iter().all(|&c| c != 0 && c != 255));
        let taken = [first[0], first[1]];
        let next = candidate_blocks("rivetr-db-a", &taken).next().unwrap();
        assert_eq!(next, first[2]);
    }

    #[test]
    fn only_subnets_in_the_private_range_count_as_taken() {
        assert_eq!(third_octet_in_range("10.213.7.0/24"), Some(7));
        assert_eq!(third_octet_in_range("10.88.0.0/16"), None);
        assert_eq!(third_octet_in_range("garbage"), None);
    }

    #[test]
    fn networks_have_their_gateway_at_one() {
        let spec = NetworkSpec {
            name: "n".into(),
            internal: true,
            labels: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        };
        let body = serde_json::to_value(network_request(&spec, 9)).unwrap();
        assert_eq!(body["Internal"], true);
        assert_eq!(body["IPAM"]["Config"][0]["Subnet"], "10.213.9.0/24");
        assert_eq!(body["IPAM"]["Config"][0]["Gateway"], "10.213.9.1");
        assert_eq!(body["Labels"]["k"], "v");
    }
}
