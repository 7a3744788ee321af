//! The bootable Oxen image (being written).
#![no_std]
#![no_main]
