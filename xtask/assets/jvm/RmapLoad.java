// A live heap of known contents, kept in use: the load of rmap-trace's JVM guest suite
// (cargo xtask vm-test --suite jvm). Compiled on the host (javac --release 17) and run by
// Debian's OpenJDK 17 in the guest.
//
// Usage: java RmapLoad MIB PAUSE_MS
//   MIB       live heap, in 16 KiB long[] arrays
//   PAUSE_MS  pause between two passes over the heap (each pass reads one long per 4 KiB)
//
// Array i is filled with one value, a hash of i: the same in every JVM run with the same MIB
// (so KSM merges two JVMs' heaps), different from every other array's (so pages of one JVM
// merge only within an array: its 3 or 4 whole pages). The work runs in a thread named
// "rmap-heap" (the JVM gives it that native name, /proc/PID/task/TID/comm), not in "main",
// whose native name stays the launcher's "java". Prints "filled N arrays, K distinct" once
// the heap is filled and compacted, then "pass N" every 10 passes.
public final class RmapLoad {
    /// longs per array: 16 KiB of data (plus the 16-byte header).
    private static final int LONGS = 2048;
    /// longs per 4 KiB page.
    private static final int STRIDE = 512;

    private RmapLoad() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 2) {
            System.err.println("usage: java RmapLoad MIB PAUSE_MS");
            System.exit(2);
        }
        final int mib = Integer.parseInt(args[0]);
        final long pauseMs = Long.parseLong(args[1]);
        Thread worker = new Thread(() -> run(mib, pauseMs), "rmap-heap");
        worker.start();
        worker.join();
    }

    /// splitmix64's finalizer: a value per array, never 0 (a zero page is special to KSM).
    static long value(long i) {
        long z = i * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z = z ^ (z >>> 31);
        return z == 0 ? 1 : z;
    }

    static void run(int mib, long pauseMs) {
        int n = mib * 64;
        long[][] heap = new long[n][];
        for (int i = 0; i < n; i++) {
            long[] a = new long[LONGS];
            java.util.Arrays.fill(a, value(i));
            heap[i] = a;
        }
        // One full collection: the arrays end up in the old generation, where nothing moves
        // them again (the passes allocate nothing).
        System.gc();
        System.out.println("filled " + n + " arrays, " + n + " distinct");
        System.out.flush();
        long sum = 0;
        for (long pass = 1; ; pass++) {
            for (long[] a : heap) {
                for (int j = 0; j < LONGS; j += STRIDE) {
                    sum += a[j];
                }
            }
            if (pass % 10 == 0) {
                System.out.println("pass " + pass + " " + (sum & 0xff));
                System.out.flush();
            }
            if (pauseMs > 0) {
                try {
                    Thread.sleep(pauseMs);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }
}
