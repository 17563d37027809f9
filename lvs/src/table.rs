//! The IPVS table as a snapshot, the operations on it ([`Ipvs`]), and an
//! in-memory implementation ([`MemoryIpvs`]) with the kernel's error rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::error::{Error, Operation};
use crate::model::{Destination, DestinationStatus, Service, ServiceKey};

/// One service and its destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The service.
    pub service: Service,
    /// Its destinations by address.
    pub destinations: BTreeMap<SocketAddr, Destination>,
}

/// A whole IPVS table (what the kernel holds, or what we want it to hold).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Services by key.
    pub services: BTreeMap<ServiceKey, TableEntry>,
}

impl Table {
    /// Add or replace a service (keeping none of the old destinations).
    pub fn insert_service(&mut self, service: Service) {
        self.services.insert(
            service.key,
            TableEntry {
                service,
                destinations: BTreeMap::new(),
            },
        );
    }

    /// Add or replace a destination of an existing service; `false` if the service is absent.
    pub fn insert_destination(&mut self, service: &ServiceKey, destination: Destination) -> bool {
        match self.services.get_mut(service) {
            Some(entry) => {
                entry.destinations.insert(destination.addr, destination);
                true
            }
            None => false,
        }
    }

    /// The table with every service normalized the way the kernel reports it
    /// (full-length persistence prefix shown as `None`, timeout in whole seconds).
    pub fn normalized(&self) -> Table {
        let mut t = self.clone();
        for entry in t.services.values_mut() {
            entry.service = entry.service.normalized();
        }
        t
    }
}

/// Operations on an IPVS table. [`IpvsClient`](crate::IpvsClient) does them on
/// the kernel; [`MemoryIpvs`] in memory (for tests and dry runs).
pub trait Ipvs {
    /// All services.
    fn services(&mut self) -> Result<Vec<Service>, Error>;
    /// The destinations of one service (empty if the service does not exist:
    /// the kernel's dump does not report a missing service).
    fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestinationStatus>, Error>;
    /// Add a service.
    fn add_service(&mut self, service: &Service) -> Result<(), Error>;
    /// Change a service's settings in place (connections are kept).
    fn update_service(&mut self, service: &Service) -> Result<(), Error>;
    /// Delete a service and its destinations.
    fn delete_service(&mut self, service: &ServiceKey) -> Result<(), Error>;
    /// Add a destination.
    fn add_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error>;
    /// Change a destination in place (connections are kept).
    fn update_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error>;
    /// Delete a destination.
    fn delete_destination(
        &mut self,
        service: &ServiceKey,
        destination: SocketAddr,
    ) -> Result<(), Error>;

    /// The whole table: every service with its destinations.
    fn table(&mut self) -> Result<Table, Error> {
        let mut table = Table::default();
        for service in self.services()? {
            let key = service.key;
            let destinations = self.destinations(&key)?;
            table.insert_service(service);
            for d in destinations {
                table.insert_destination(&key, d.destination);
            }
        }
        Ok(table)
    }
}

/// An IPVS table in memory that answers like the kernel: adding what exists,
/// or touching what does not, fails with the same typed errors.
///
/// Counts every write in [`MemoryIpvs::writes`], so tests can prove that a
/// reconciliation did not touch the table.
#[derive(Debug, Clone, Default)]
pub struct MemoryIpvs {
    /// The current table.
    pub table: Table,
    /// Number of successful add/update/delete calls so far.
    pub writes: usize,
}

impl MemoryIpvs {
    /// An empty table.
    pub fn new() -> Self {
        MemoryIpvs::default()
    }

    fn entry(
        &mut self,
        operation: Operation,
        service: &ServiceKey,
    ) -> Result<&mut TableEntry, Error> {
        self.table
            .services
            .get_mut(service)
            .ok_or(Error::ServiceNotFound {
                operation,
                service: *service,
            })
    }
}

impl Ipvs for MemoryIpvs {
    fn services(&mut self) -> Result<Vec<Service>, Error> {
        Ok(self
            .table
            .services
            .values()
            .map(|e| e.service.normalized())
            .collect())
    }

    fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestinationStatus>, Error> {
        let Some(entry) = self.table.services.get(service) else {
            return Ok(Vec::new()); // as the kernel: an empty dump, not an error
        };
        Ok(entry
            .destinations
            .values()
            .map(|d| DestinationStatus {
                destination: *d,
                active_connections: 0,
                inactive_connections: 0,
                persistent_connections: 0,
            })
            .collect())
    }

    fn add_service(&mut self, service: &Service) -> Result<(), Error> {
        if self.table.services.contains_key(&service.key) {
            return Err(Error::ServiceExists(service.key));
        }
        self.table.insert_service(service.normalized());
        self.writes += 1;
        Ok(())
    }

    fn update_service(&mut self, service: &Service) -> Result<(), Error> {
        self.entry(Operation::UpdateService, &service.key)?.service = service.normalized();
        self.writes += 1;
        Ok(())
    }

    fn delete_service(&mut self, service: &ServiceKey) -> Result<(), Error> {
        if self.table.services.remove(service).is_none() {
            return Err(Error::ServiceNotFound {
                operation: Operation::DeleteService,
                service: *service,
            });
        }
        self.writes += 1;
        Ok(())
    }

    fn add_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error> {
        let entry = self.entry(Operation::AddDestination, service)?;
        if entry.destinations.contains_key(&destination.addr) {
            return Err(Error::DestinationExists {
                service: *service,
                destination: destination.addr,
            });
        }
        entry.destinations.insert(destination.addr, *destination);
        self.writes += 1;
        Ok(())
    }

    fn update_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error> {
        let entry = self.entry(Operation::UpdateDestination, service)?;
        match entry.destinations.get_mut(&destination.addr) {
            Some(d) => *d = *destination,
            None => {
                return Err(Error::DestinationNotFound {
                    operation: Operation::UpdateDestination,
                    service: *service,
                    destination: destination.addr,
                });
            }
        }
        self.writes += 1;
        Ok(())
    }

    fn delete_destination(
        &mut self,
        service: &ServiceKey,
        destination: SocketAddr,
    ) -> Result<(), Error> {
        let entry = self.entry(Operation::DeleteDestination, service)?;
        if entry.destinations.remove(&destination).is_none() {
            return Err(Error::DestinationNotFound {
                operation: Operation::DeleteDestination,
                service: *service,
                destination,
            });
        }
        self.writes += 1;
        Ok(())
    }
}
