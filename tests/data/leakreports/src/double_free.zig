//! Frees one block twice: the debug allocator logs "Double free detected" and panics.
//! A large block with retained metadata, because small-bucket pages are unmapped on free
//! (the second free would segfault before any report).
const std = @import("std");

fn releaseSession(allocator: std.mem.Allocator, buf: []u8) void {
    allocator.free(buf);
}

pub fn main() !void {
    var gpa: std.heap.DebugAllocator(.{ .retain_metadata = true, .never_unmap = true }) = .init;
    defer _ = gpa.deinit();
    const allocator = gpa.allocator();
    const buf = try allocator.alloc(u8, 8192);
    releaseSession(allocator, buf);
    releaseSession(allocator, buf);
}
