/* at_wire_limits_alone.c: proves at_wire_limits.h compiles on its own (header self-containment). */
#include "at_wire_limits.h"

int at_wire_limits_alone(void);
int at_wire_limits_alone(void)
{
    return 0;
}
