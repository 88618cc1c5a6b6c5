/* memory-hog: allocates and touches memory, 16 MiB at a time, until the kernel's OOM killer
 * stops it (the job's memory limit). Prints its progress so `kubectl logs` shows how far it got.
 * Static, no shell: it also proves the OOM path does not depend on anything in the image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (16u * 1024u * 1024u)

int main(void) {
    unsigned long total = 0;
    for (;;) {
        char *block = malloc(CHUNK);
        if (!block) {
            fprintf(stderr, "malloc failed after %lu MiB\n", total / (1024 * 1024));
            return 3; /* not an OOM kill: the manifest lists no code 3, so FAILED */
        }
        memset(block, 0xa5, CHUNK); /* touch every page: only resident memory counts */
        total += CHUNK;
        printf("holding %lu MiB\n", total / (1024 * 1024));
        fflush(stdout);
    }
}
