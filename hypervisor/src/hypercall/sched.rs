//! `sched_shutdown`: a domain stops itself with a reason. (`sched_yield`
//! and `sched_block` need no arguments and are handled by the run loop.)

use super::{Caller, Flow};
use dom0_abi::{ShutdownReason, Status};

/// Stop the calling domain.
pub fn shutdown(c: &mut Caller<'_>, reason: u64) -> Flow {
    match ShutdownReason::try_from(reason) {
        Ok(reason) => {
            c.table.shutdown(c.dom, reason);
            Flow::Stopped
        }
        Err(_) => Flow::Return(Err(Status::EINVAL)),
    }
}
