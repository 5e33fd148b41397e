pub mod oer;
