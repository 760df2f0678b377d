/* Consistent Overhead Byte Stuffing (Cheshire & Baker 1999), as firmware_bridge/cobs.py. */
#include "proto.h"

/* Shortest form: a body that ends with a full run of 254 non-zero bytes ends on that run's
 * FF block, without the final 01 code byte the paper's encoder adds (docs/protocol.md,
 * section 3), so a 254-byte body stays within 255 encoded bytes. */
size_t qp_cobs_encode(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t o = 1, code_at = 0;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != 0) {
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0 || code == 0xFF) {
            out[code_at] = code;
            if (in[i] != 0 && i + 1 == len)
                return o; /* a full block ends the data: no final 01 */
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
}

/* Lenient: decodes the paper's form too (a final 01 after a full block adds nothing).
 * Safe in place (out == in): the output never overtakes the input. */
int qp_cobs_decode(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i];
        if (code == 0 || code > len - i)
            return -1; /* a zero inside a frame, or a block running past its end */
        i++;
        for (uint8_t k = 1; k < code; k++)
            out[o++] = in[i++];
        if (code < 0xFF && i < len)
            out[o++] = 0;
    }
    return (int)o;
}
