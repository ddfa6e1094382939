//! Frees a block with the wrong length: the debug allocator logs a size mismatch. Both sizes
//! in one size class (33..64 B): across classes the free panics with "Invalid free" instead.
const std = @import("std");

fn freeTruncated(allocator: std.mem.Allocator, buf: []u8) void {
    allocator.free(buf[0..36]);
}

pub fn main() !void {
    var gpa: std.heap.DebugAllocator(.{}) = .init;
    defer _ = gpa.deinit();
    const allocator = gpa.allocator();
    const buf = try allocator.alloc(u8, 40);
    freeTruncated(allocator, buf);
}
