/* at_wire_alone.c: proves at_wire.h compiles on its own (header self-containment). */
#include "at_wire.h"

int at_wire_alone(void);
int at_wire_alone(void)
{
    return 0;
}
