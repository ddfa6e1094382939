//! `zig test` with std.testing.allocator: one test leaks 48 bytes, so the run exits 1.
const std = @import("std");

fn buildReply(allocator: std.mem.Allocator) ![]u8 {
    return allocator.alloc(u8, 48);
}

test "reply is freed" {
    const reply = try buildReply(std.testing.allocator);
    defer std.testing.allocator.free(reply);
    try std.testing.expect(reply.len == 48);
}

test "reply leaks" {
    const reply = try buildReply(std.testing.allocator);
    try std.testing.expect(reply.len == 48);
}
