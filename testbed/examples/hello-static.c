/* hello-static: a BatchX image with no Python and no shell (one static binary).
 *
 * Reads /batchx/input/input.json, writes /batchx/output/greeting.txt (a greeting naming the job,
 * its resources and the input it got) and lists it in /batchx/output/output.json.
 * Exit codes: 0 success, 1 cannot read the input, 2 cannot write the output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT "/batchx/input/input.json"
#define GREETING "/batchx/output/greeting.txt"
#define OUTPUT "/batchx/output/output.json"
#define MAX_INPUT (256 * 1024)

static const char *env(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

int main(void) {
    static char input[MAX_INPUT + 1];
    FILE *in = fopen(INPUT, "rb");
    if (!in) {
        perror(INPUT);
        return 1;
    }
    size_t n = fread(input, 1, MAX_INPUT, in);
    fclose(in);
    input[n] = '\0';

    FILE *greeting = fopen(GREETING, "wb");
    if (!greeting) {
        perror(GREETING);
        return 2;
    }
    fprintf(greeting, "hello from job %s in environment %s (%s vCPUs, %s MB, %s GPUs)\ninput: %s\n",
            env("BX_JOB"), env("BATCHX_ENV"), env("BX_VCPUS"), env("BX_MEMORY"), env("BX_GPUS"),
            input);
    if (fclose(greeting) != 0) {
        perror(GREETING);
        return 2;
    }

    FILE *out = fopen(OUTPUT, "wb");
    if (!out) {
        perror(OUTPUT);
        return 2;
    }
    fprintf(out, "{\"greeting\": \"%s\", \"inputBytes\": %zu}\n", GREETING, n);
    if (fclose(out) != 0) {
        perror(OUTPUT);
        return 2;
    }
    printf("wrote %s and %s\n", GREETING, OUTPUT);
    return 0;
}
