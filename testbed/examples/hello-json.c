/* hello-json: the trivial BatchX job. One static binary (no Python, no shell), no files.
 *
 * Reads /batchx/input/input.json and writes /batchx/output/output.json:
 * {"greeting": "hello from job <BX_JOB>", "input": <the input as read>}. Its output schema
 * lists no file, so its job runs on the direct path (no runner container; the kubelet returns
 * output.json), and a large input makes an output too large for that path (4096 bytes).
 * Exit codes: 0 success, 1 cannot read the input, 2 cannot write the output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT "/batchx/input/input.json"
#define OUTPUT "/batchx/output/output.json"
#define MAX_INPUT (256 * 1024)

int main(void) {
    static char input[MAX_INPUT + 1];
    FILE *in = fopen(INPUT, "rb");
    if (!in) {
        perror(INPUT);
        return 1;
    }
    size_t n = fread(input, 1, MAX_INPUT, in);
    fclose(in);
    while (n > 0 && (input[n - 1] == '\n' || input[n - 1] == ' ')) {
        n--;
    }
    input[n] = '\0';

    const char *job = getenv("BX_JOB");
    FILE *out = fopen(OUTPUT, "wb");
    if (!out) {
        perror(OUTPUT);
        return 2;
    }
    fprintf(out, "{\"greeting\": \"hello from job %s\", \"input\": %s}\n", job ? job : "",
            n ? input : "null");
    if (fclose(out) != 0) {
        perror(OUTPUT);
        return 2;
    }
    printf("wrote %s (%zu input bytes)\n", OUTPUT, n);
    return 0;
}
