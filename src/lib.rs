pub mod rpmdb;
