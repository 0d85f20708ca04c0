/* util/base64.c: RFC 4648 test vectors and HTTP Basic credentials. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/base64.h"

static const char *
enc(const char *s)
{
    static char out[64];
    base64_encode(s, strlen(s), out);
    CHECK_EQ_I64(strlen(out), base64_len(strlen(s)));
    return out;
}

int
main(void)
{
    CHECK_STREQ(enc(""), "");
    CHECK_STREQ(enc("f"), "Zg==");
    CHECK_STREQ(enc("fo"), "Zm8=");
    CHECK_STREQ(enc("foo"), "Zm9v");
    CHECK_STREQ(enc("foob"), "Zm9vYg==");
    CHECK_STREQ(enc("fooba"), "Zm9vYmE=");
    CHECK_STREQ(enc("foobar"), "Zm9vYmFy");
    CHECK_STREQ(enc("\xff\xfe\xfd"), "//79");
    char *b = base64_basic("Aladdin", 7, "open sesame", 11);
    CHECK_STREQ(b, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    free(b);
    b = base64_basic("u", 1, "", 0);
    CHECK_STREQ(b, "Basic dTo=");
    free(b);
    return CHECK_DONE();
}
