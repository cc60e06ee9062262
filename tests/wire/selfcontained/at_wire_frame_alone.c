/* at_wire_frame_alone.c: proves at_wire_frame.h compiles on its own (header self-containment). */
#include "at_wire_frame.h"

int at_wire_frame_alone(void);
int at_wire_frame_alone(void)
{
    return 0;
}
