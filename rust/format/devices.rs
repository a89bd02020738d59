// SPDX-License-Identifier: GPL-2.0

//! The device table (`struct erofs_deviceslot`, 128 bytes each) and device routing
//! (`erofs_map_dev`).

use super::error::{Error, Result};
use super::le::{self, le32};
use super::superblock::SuperBlock;

/// Size of one on-disk device slot.
pub(crate) const EROFS_DEVT_SLOT_SIZE: usize = 128;

/// One parsed device slot. Device `i + 1` (as used in chunk indexes) is slot `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceSlot {
    /// Device tag (digest, or the blob path/name for some tools); NUL padded.
    pub(crate) tag: [u8; 64],
    /// Total blocks of this device.
    pub(crate) blocks: u32,
    /// If non-zero, this device is mapped into the primary block address space
    /// starting at this block (flat multi-device mapping).
    pub(crate) mapped_blkaddr: u32,
}

impl DeviceSlot {
    /// Parses a 128-byte `erofs_deviceslot` (Corrupted if `buf` is shorter).
    pub(crate) fn parse(buf: &[u8]) -> Result<DeviceSlot> {
        let buf = buf.get(..EROFS_DEVT_SLOT_SIZE).ok_or(Error::Corrupted)?;
        Ok(DeviceSlot {
            tag: le::arr(buf, 0)?,
            blocks: le32(buf, 64)?,
            mapped_blkaddr: le32(buf, 68)?,
        })
    }

    /// Reads and parses device slot `index` (0-based; device id `index + 1`).
    pub(crate) fn read(
        src: &impl super::Source,
        sb: &SuperBlock,
        index: u16,
    ) -> Result<DeviceSlot> {
        let mut buf = [0u8; EROFS_DEVT_SLOT_SIZE];
        src.read_exact(sb.device_slot_pos(index)?, &mut buf)?;
        DeviceSlot::parse(&buf)
    }

    /// Tag bytes up to the first NUL.
    pub(crate) fn tag(&self) -> &[u8] {
        let end = self
            .tag
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.tag.len());
        self.tag.get(..end).unwrap_or(&[])
    }
}

impl SuperBlock {
    /// Byte position of device slot `index` (0-based):
    /// `devt_slotoff * 128 + index * 128`. Fails with Corrupted if `index >= extra_devices`.
    pub(crate) fn device_slot_pos(&self, index: u16) -> Result<u64> {
        if index >= self.extra_devices {
            return Err(Error::Corrupted);
        }
        let slot = u64::from(self.devt_slotoff) + u64::from(index);
        le::mul(slot, EROFS_DEVT_SLOT_SIZE as u64)
    }
}

/// Result of [`map_device`]: where to actually read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceMapping {
    /// 0 = primary device, `n >= 1` = extra device `n` (slot `n - 1`).
    pub(crate) device: u16,
    /// Byte offset on that device.
    pub(crate) physical: u64,
}

/// Routes a mapped extent to a device, with the kernel's `erofs_map_dev` semantics.
///
/// * `device != 0`: the extent lives on extra device `device` (slot `device - 1`, which
///   must exist, else Corrupted). If `flatdev` (all devices concatenated in the primary
///   device, i.e. no extra devices were supplied at mount time), it is translated to
///   the primary device by adding `mapped_blkaddr * blksz`.
/// * `device == 0` and not `flatdev`: if some device has a non-zero `mapped_blkaddr`
///   and `physical` falls into `[mapped_blkaddr, mapped_blkaddr + blocks)` (in bytes),
///   route to that device, relative to its start. Otherwise it stays on the primary.
pub(crate) fn map_device(
    sb: &SuperBlock,
    devices: &[DeviceSlot],
    flatdev: bool,
    device: u16,
    physical: u64,
) -> Result<DeviceMapping> {
    if device != 0 {
        let slot = devices
            .get(usize::from(device) - 1)
            .ok_or(Error::Corrupted)?;
        if flatdev {
            let start = sb.blkpos(u64::from(slot.mapped_blkaddr))?;
            return Ok(DeviceMapping {
                device: 0,
                physical: le::add(physical, start)?,
            });
        }
        return Ok(DeviceMapping { device, physical });
    }
    if !flatdev {
        for (i, slot) in devices.iter().enumerate() {
            if slot.mapped_blkaddr == 0 {
                continue;
            }
            let start = sb.blkpos(u64::from(slot.mapped_blkaddr))?;
            let len = sb.blkpos(u64::from(slot.blocks))?;
            if physical >= start && physical - start < len {
                let id = u16::try_from(i + 1).map_err(|_| Error::Corrupted)?;
                return Ok(DeviceMapping {
                    device: id,
                    physical: physical - start,
                });
            }
        }
    }
    Ok(DeviceMapping {
        device: 0,
        physical,
    })
}
