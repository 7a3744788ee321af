/*
 * Oxen boot stub: the one 32-bit entry that both boot protocols reach.
 *
 *   multiboot2 (GRUB):  EAX = 0x36d76289, EBX = physical address of the MBI
 *   PVH (QEMU -kernel): EBX = physical address of hvm_start_info
 *                       (whose first word is 0x336ec578); EAX is undefined
 *
 * Both enter in 32-bit protected mode with paging off. The stub zeroes .bss,
 * builds boot page tables (the first 4 GiB identity-mapped and at the direct
 * map base, the first GiB at the kernel base, all with 2 MiB pages), enables
 * long mode (AMD APM Vol.2 14.6, Intel SDM Vol.3A 10.8.5) and calls
 * `kernel_entry(eax, ebx)` in the higher half. Rust then builds the final
 * page tables and drops the identity map.
 *
 * The image is linked at KERNEL_VMA + physical, so until paging is on every
 * absolute address here is written as `symbol - KERNEL_VMA`.
 */

.set KERNEL_VMA,        0xffffffff80000000
.set MB2_MAGIC,         0xe85250d6
.set MB2_ARCH_I386,     0
.set MSR_EFER,          0xc0000080
.set EFER_LME,          1 << 8
.set CR0_PE,            1 << 0
.set CR0_WP,            1 << 16
.set CR0_PG,            1 << 31
.set CR4_PAE,           1 << 5
.set PTE_P,             1 << 0
.set PTE_W,             1 << 1
.set PTE_PS,            1 << 7
.set COM1,              0x3f8

/* ---- multiboot2 header (Multiboot2 spec 3.1) ---------------------------- */
.section .multiboot2, "a"
.balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
    /* Entry address tag (type 3): the physical entry point. */
    .balign 8
    .short 3, 0
    .long 12
    .long _start32 - KERNEL_VMA
    /* Module alignment tag (type 6): modules page-aligned. */
    .balign 8
    .short 6, 0
    .long 8
    /* End tag. */
    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:

/* ---- PVH entry note (Xen's elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY = 18) ---- */
.section .note.Xen, "a", @note
.balign 4
    .long 4                     /* namesz: "Xen\0" */
    .long 4                     /* descsz */
    .long 18                    /* type: XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long _start32 - KERNEL_VMA
    .balign 4

/* ---- 32-bit entry ------------------------------------------------------- */
.section .text.boot, "ax"
.code32
.global _start32
_start32:
    cli
    cld
    mov %eax, %ebp                      /* boot magic (multiboot2) or junk (PVH) */
    mov %ebx, %esi                      /* boot information, physical */

    /* Zero .bss: the boot page tables and stack live there. */
    mov $(__bss_start - KERNEL_VMA), %edi
    mov $(__bss_end - KERNEL_VMA), %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $(boot_stack_top - KERNEL_VMA), %esp

    /* Long mode needs CPUID.80000001h:EDX.LM[29]. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz no_long_mode

    /* 2048 PD entries of 2 MiB cover the first 4 GiB. */
    mov $(boot_pd - KERNEL_VMA), %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $(PTE_P | PTE_W | PTE_PS), %eax
    mov %eax, (%edi, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    /* Low PDPT: four PDs, 4 GiB. Used at PML4[0] (identity) and PML4[256]
     * (the direct map base 0xffff800000000000). */
    mov $(boot_pdpt_low - KERNEL_VMA), %edi
    mov $(boot_pd - KERNEL_VMA + (PTE_P | PTE_W)), %eax
    mov %eax, 0(%edi)
    add $4096, %eax
    mov %eax, 8(%edi)
    add $4096, %eax
    mov %eax, 16(%edi)
    add $4096, %eax
    mov %eax, 24(%edi)

    /* High PDPT: entry 510 maps KERNEL_VMA -> physical 0 (first GiB). */
    mov $(boot_pdpt_high - KERNEL_VMA), %edi
    mov $(boot_pd - KERNEL_VMA + (PTE_P | PTE_W)), %eax
    mov %eax, (510 * 8)(%edi)

    mov $(boot_pml4 - KERNEL_VMA), %edi
    mov $(boot_pdpt_low - KERNEL_VMA + (PTE_P | PTE_W)), %eax
    mov %eax, 0(%edi)
    mov %eax, (256 * 8)(%edi)
    mov $(boot_pdpt_high - KERNEL_VMA + (PTE_P | PTE_W)), %eax
    mov %eax, (511 * 8)(%edi)
    mov %edi, %cr3

    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4

    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr

    mov %cr0, %eax
    or $(CR0_PG | CR0_WP | CR0_PE), %eax
    mov %eax, %cr0

    lgdt (boot_gdt_ptr - KERNEL_VMA)
    ljmp $0x08, $(start64_low - KERNEL_VMA)

/* No long mode: say so on COM1 and stop. */
no_long_mode:
    mov $(msg_no_long_mode - KERNEL_VMA), %esi
    mov $COM1, %dx
2:  lodsb
    test %al, %al
    jz 3f
    out %al, %dx
    jmp 2b
3:  hlt
    jmp 3b

/* ---- 64-bit, still at the physical address ------------------------------ */
.code64
start64_low:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $start64_high, %rax
    jmp *%rax

start64_high:
    movabs $boot_stack_top, %rsp
    mov %ebp, %edi                      /* arg 0: boot magic */
                                        /* arg 1 (%esi): info, zero-extended */
    xor %ebp, %ebp
    call kernel_entry
4:  cli
    hlt
    jmp 4b

/* ---- boot data ---------------------------------------------------------- */
.section .rodata
msg_no_long_mode:
    .asciz "Oxen: this CPU has no 64-bit long mode; cannot boot.\r\n"

.section .data
.balign 16
/* Flat GDT for the switch: null, 64-bit code (0x08), data (0x10). The
 * accessed bits are preset so the CPU never writes to it. */
boot_gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt - KERNEL_VMA

.section .bss
.balign 4096
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4 * 4096
.global boot_stack_bottom
boot_stack_bottom:
                .skip 65536
boot_stack_top:
