//! Tiny "gateway" that serves three requests and exits cleanly, so Zig's debug allocator
//! prints its exit-time leak report (error(DebugAllocator): memory address 0x... leaked:).
const std = @import("std");
const http = @import("http.zig");

pub fn main() !void {
    var gpa: std.heap.DebugAllocator(.{}) = .init;
    defer _ = gpa.deinit();
    const allocator = gpa.allocator();
    _ = try http.handleRequest(allocator, "/health", null);
    _ = try http.handleRequest(allocator, "/agent", "token");
    _ = try http.handleRequest(allocator, "/health", "token");
}
