package io.hpvm.loader;

/** A program header. */
public record Segment(int type, int flags, long offset, long vaddr, long fileSize, long memSize, long align) {
    public boolean isExecutable() {
        return (flags & Elf.PF_X) != 0;
    }
}
