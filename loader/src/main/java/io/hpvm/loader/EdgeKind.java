package io.hpvm.loader;

/**
 * The small set of fixup kinds ELF x86-64 relocations map onto while an object is read. In the formulas, P is the
 * fixup address, S the target address, A the addend, G the address of a GOT entry holding S.
 */
public enum EdgeKind {
    /** {@code R_X86_64_64}: Fixup <- S + A : uint64. Never fails. */
    POINTER64(8),
    /** {@code R_X86_64_PC32}: Fixup <- S + A - P : int32. Fails when the target is beyond +-2 GiB. */
    PCREL32(4),
    /**
     * {@code R_X86_64_PLT32}: Fixup <- S + A - P : int32 for a branch. When S is beyond +-2 GiB the branch goes to a
     * veneer ({@code jmp [rip+0]; .quad S}) placed beside the code instead.
     */
    BRANCH_PCREL32(4),
    /** {@code R_X86_64_32}: Fixup <- S + A : uint32. Fails when the address does not fit in 32 bits (PIE). */
    POINTER32(4),
    /** {@code R_X86_64_32S}: Fixup <- S + A : int32. Fails when the address does not fit sign-extended. */
    POINTER32_SIGNED(4),
    /**
     * {@code R_X86_64_GOTPCREL}, {@code GOTPCRELX}, {@code REX_GOTPCRELX}: Fixup <- G + A - P : int32, with a GOT
     * entry made beside the code for each distinct S. (No relaxation: the GOT load is always valid.)
     */
    GOT_PCREL32(4),
    /** {@code R_X86_64_PC64}: Fixup <- S + A - P : int64. Never fails. */
    PCREL64(8),
    /** {@code R_X86_64_GOTOFF64}: Fixup <- S + A - GOT : int64, GOT being the base of the image's GOT. */
    GOT_OFFSET64(8),
    /** {@code R_X86_64_GOTPC32}: Fixup <- GOT + A - P : int32 (S, normally _GLOBAL_OFFSET_TABLE_, is unused). */
    GOT_BASE_PCREL32(4),
    /** {@code R_X86_64_GOTPC64}: Fixup <- GOT + A - P : int64. */
    GOT_BASE_PCREL64(8),
    /** {@code R_X86_64_SIZE32}: Fixup <- Z + A : uint32, Z the symbol's size (defined symbols only). */
    SIZE32(4),
    /** {@code R_X86_64_SIZE64}: Fixup <- Z + A : uint64. */
    SIZE64(8),
    /** {@code R_X86_64_GOTTPOFF} (initial-exec TLS): Fixup <- G + A - P : int32, G a GOT entry holding TPOFF(S). */
    GOT_TPOFF_PCREL32(4),
    /** {@code R_X86_64_TPOFF32} (local-exec TLS): Fixup <- TPOFF(S) + A : int32. */
    TPOFF32(4),
    /**
     * {@code R_X86_64_TLSGD} (general-dynamic TLS): Fixup <- G + A - P : int32, G a pair of GOT entries
     * {module id, DTPOFF(S)} passed to {@code __tls_get_addr}.
     */
    TLS_GD_PCREL32(4),
    /** {@code R_X86_64_TLSLD} (local-dynamic TLS): Fixup <- G + A - P : int32, G the pair {module id, 0}. */
    TLS_LD_PCREL32(4),
    /** {@code R_X86_64_DTPOFF32}: Fixup <- DTPOFF(S) + A : int32, S's offset in its module's TLS block. */
    DTPOFF32(4),
    /** {@code R_X86_64_DTPOFF64}: Fixup <- DTPOFF(S) + A : int64. */
    DTPOFF64(8);

    private final int width;

    EdgeKind(int width) {
        this.width = width;
    }

    /** Bytes the fixup writes. */
    public int width() {
        return width;
    }

    /** True for kinds whose value is relative to the fixup address. */
    public boolean isPcRelative() {
        return this == PCREL32 || this == BRANCH_PCREL32 || this == GOT_PCREL32 || this == PCREL64
            || this == GOT_BASE_PCREL32 || this == GOT_BASE_PCREL64 || this == GOT_TPOFF_PCREL32
            || this == TLS_GD_PCREL32 || this == TLS_LD_PCREL32;
    }

    /** Maps an ELF relocation type, or returns null when hpvm does not support it. */
    public static EdgeKind of(int relocationType) {
        return switch (relocationType) {
            case Elf.R_X86_64_64 -> POINTER64;
            case Elf.R_X86_64_PC32 -> PCREL32;
            case Elf.R_X86_64_PLT32 -> BRANCH_PCREL32;
            case Elf.R_X86_64_32 -> POINTER32;
            case Elf.R_X86_64_32S -> POINTER32_SIGNED;
            case Elf.R_X86_64_GOTPCREL, Elf.R_X86_64_GOTPCRELX, Elf.R_X86_64_REX_GOTPCRELX -> GOT_PCREL32;
            case Elf.R_X86_64_PC64 -> PCREL64;
            case Elf.R_X86_64_GOTOFF64 -> GOT_OFFSET64;
            case Elf.R_X86_64_GOTPC32 -> GOT_BASE_PCREL32;
            case Elf.R_X86_64_GOTPC64 -> GOT_BASE_PCREL64;
            case Elf.R_X86_64_SIZE32 -> SIZE32;
            case Elf.R_X86_64_SIZE64 -> SIZE64;
            case Elf.R_X86_64_GOTTPOFF -> GOT_TPOFF_PCREL32;
            case Elf.R_X86_64_TPOFF32 -> TPOFF32;
            case Elf.R_X86_64_TLSGD -> TLS_GD_PCREL32;
            case Elf.R_X86_64_TLSLD -> TLS_LD_PCREL32;
            case Elf.R_X86_64_DTPOFF32 -> DTPOFF32;
            case Elf.R_X86_64_DTPOFF64 -> DTPOFF64;
            default -> null;
        };
    }
}
