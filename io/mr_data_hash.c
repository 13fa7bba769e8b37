/* SHA-256 of a dataset's model inputs (mr_data.h), with Nettle. */
#include <nettle/sha2.h>
#include <stdio.h>

#include "mr_data.h"

void mr_dataset_sha256(const mr_dataset *d, char hex[65])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    if (d->kind == MR_DATA_IMAGES) {
        sha256_update(&ctx, (size_t)d->n * d->h * d->w * d->c, d->images);
    } else {
        /* int32 little-endian, whatever the host's byte order */
        size_t n = (size_t)d->n * d->cols;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)d->tokens[i];
            uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
            sha256_update(&ctx, 4, b);
        }
    }
    uint8_t dig[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, dig);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", dig[i]);
}
